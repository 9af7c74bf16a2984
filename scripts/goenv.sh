# Sourced by .ci/run and the scripts beside it: the Go toolchain every
# build, test and check of QuantumFlow runs with.
#
# go1.27.3, not the machine's go1.26.8: the standard library of go1.26.8
# has vulnerabilities that QuantumFlow's code reaches (net/http,
# crypto/tls, crypto/x509, html/template, net/textproto; fixed in go1.26.10
# and go1.27.3, the newer toolchain these machines take), and
# scripts/vulncheck.sh fails on them. The go command fetches the
# toolchain through the Go module proxy on first use (about 80 MB, once
# per machine). The machines here set GOTOOLCHAIN=local, under which the
# go command ignores go.mod's toolchain line: that is overridden; any other
# GOTOOLCHAIN in the environment is kept.
if [ -z "${GOTOOLCHAIN:-}" ] || [ "$GOTOOLCHAIN" = local ]; then
	export GOTOOLCHAIN=go1.27.3
fi
