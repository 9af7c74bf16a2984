package cli_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/cmd/cli"
	"github.com/quantumflow/quantumflow/pubsub"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths and a pool trusting the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "quantumflow test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLSRolesAndAudit runs serve over HTTPS with a generated
// certificate and both tokens read from files: plain HTTP is not served,
// reads need the read (or admin) token, the read token cannot mutate, a
// retry with the admin token is in the audit log with its role, remote
// address and count, as are the CLI's own purges (role cli), and neither
// token is ever printed.
func TestServeTLSRolesAndAudit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	const admin, read = "tls-admin-token", "tls-read-token"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "admin"), []byte(admin+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "read"), []byte(read), 0o600))
	env := map[string]string{"QUANTUM_FLOW_DATABASE_URL": b.url,
		"QUANTUM_FLOW_ADMIN_TOKEN_FILE": filepath.Join(dir, "admin"), "QUANTUM_FLOW_READ_TOKEN_FILE": filepath.Join(dir, "read")}
	id := deadLetterVia(t, b.backend, "rollback_triggers_queue", `{"rollback":"r-9"}`)
	deadLetterVia(t, b.backend, "metrics_to_guardian_queue", `{"m":1}`)

	s := startServe(t, env, "--http", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile)
	require.True(t, strings.HasPrefix(s.url, "https://127.0.0.1:"), s.url)
	// Plain HTTP to the TLS port gets no API answer.
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if res, err := plain.Get("http://" + strings.TrimPrefix(s.url, "https://") + "/api/queues"); err == nil {
		res.Body.Close()
		require.Equal(t, http.StatusBadRequest, res.StatusCode, "Go answers plain HTTP on a TLS port with 400")
	}
	s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}}

	code, _ := s.do(t, "GET", "/healthz", "", "")
	require.Equal(t, http.StatusOK, code, "health stays open")
	for _, path := range []string{"/api/queues", "/api/dlq", "/api/audit", "/api/history", "/metrics"} {
		code, body := s.do(t, "GET", path, "", "")
		require.Equal(t, http.StatusUnauthorized, code, "%s: %s", path, body)
		code, _ = s.do(t, "GET", path, "Bearer nope", "")
		require.Equal(t, http.StatusForbidden, code, path)
		for _, tok := range []string{read, admin} {
			code, body = s.do(t, "GET", path, "Bearer "+tok, "")
			require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
		}
	}
	sel := `{"ids":["` + id + `"]}`
	code, body := s.do(t, "POST", "/api/dlq/retry", "Bearer "+read, sel)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "read token cannot change anything")
	code, body = s.do(t, "POST", "/api/dlq/retry", "Bearer "+admin, sel)
	require.Equal(t, http.StatusOK, code, body)

	// The CLI's own mutation is audited too.
	r := (&bundle{env: map[string]string{"QUANTUM_FLOW_DATABASE_URL": b.url}}).run(t, "dlq", "purge", "--queue", "metrics_to_guardian_queue")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)

	code, body = s.do(t, "GET", "/api/audit", "Bearer "+read, "")
	require.Equal(t, http.StatusOK, code, body)
	var list struct {
		Entries []pubsub.AuditEntry `json:"entries"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list.Entries, 2, body)
	cliEntry, httpEntry := list.Entries[0], list.Entries[1]
	require.Equal(t, "cli", cliEntry.Role)
	require.Equal(t, "dlq.purge", cliEntry.Action)
	require.Equal(t, "metrics_to_guardian_queue", cliEntry.Queue)
	require.Equal(t, 1, cliEntry.Count)
	require.Contains(t, cliEntry.Remote, "@")
	require.Equal(t, "admin", httpEntry.Role)
	require.Equal(t, "dlq.retry", httpEntry.Action)
	require.Equal(t, 1, httpEntry.Count)
	require.Equal(t, "ids=1", httpEntry.Detail)
	require.True(t, strings.HasPrefix(httpEntry.Remote, "127.0.0.1:"), httpEntry.Remote)
	require.WithinDuration(t, time.Now(), httpEntry.At, time.Minute)

	r = (&bundle{env: map[string]string{"QUANTUM_FLOW_DATABASE_URL": b.url}}).run(t, "audit", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	rows := r.lines(t)
	require.Len(t, rows, 2)
	require.Equal(t, "dlq.purge", rows[0]["action"])
	require.Equal(t, "dlq.retry", rows[1]["action"])
	r = (&bundle{env: map[string]string{"QUANTUM_FLOW_DATABASE_URL": b.url}}).run(t, "audit")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "ACTION")
	require.Contains(t, r.stdout, "dlq.retry")

	require.Equal(t, cli.ExitOK, s.stop())
	for _, tok := range []string{admin, read} {
		require.NotContains(t, s.stderr.String(), tok, "a token is never logged")
	}
	st, err := b.backend.Stats(context.Background(), "rollback_triggers_queue")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Pending, "the admin retry moved it back")
}

// TestServeAccessUsageErrors: TLS files and token settings that cannot
// work are refused with exit 2 before anything is served, naming the
// setting and never a token.
func TestServeAccessUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte(" \n"), 0o600))
	for name, c := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"CertOnly":       {nil, []string{"--tls-cert", certFile}, "--tls-cert and --tls-key go together"},
		"KeyOnly":        {nil, []string{"--tls-key", keyFile}, "--tls-cert and --tls-key go together"},
		"SwappedFiles":   {nil, []string{"--tls-cert", keyFile, "--tls-key", certFile}, "--tls-cert " + keyFile},
		"MissingFile":    {nil, []string{"--tls-cert", filepath.Join(dir, "nope.crt"), "--tls-key", keyFile}, "nope.crt"},
		"BothTokenForms": {map[string]string{"QUANTUM_FLOW_ADMIN_TOKEN": "sekret-value", "QUANTUM_FLOW_ADMIN_TOKEN_FILE": empty}, nil, "both QUANTUM_FLOW_ADMIN_TOKEN and QUANTUM_FLOW_ADMIN_TOKEN_FILE are set"},
		"EmptyTokenFile": {map[string]string{"QUANTUM_FLOW_READ_TOKEN_FILE": empty}, nil, "QUANTUM_FLOW_READ_TOKEN_FILE: " + empty + " is empty"},
		"NoTokenFile":    {map[string]string{"QUANTUM_FLOW_READ_TOKEN_FILE": filepath.Join(dir, "absent")}, nil, "QUANTUM_FLOW_READ_TOKEN_FILE: read " + filepath.Join(dir, "absent")},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := (&bundle{env: c.env}).run(t, append([]string{"serve", "--url", "mem://", "--http", "127.0.0.1:0"}, c.args...)...)
			require.Equal(t, cli.ExitUsage, r.code, r.stderr)
			require.Contains(t, r.stderr, c.want)
			require.NotContains(t, r.stderr, "sekret-value")
		})
	}
}

// TestAuditCommand: an empty log prints the header only; --limit is
// bounded (exit 2 outside 1..10000); the CLI's retry and purge are
// recorded with role cli, their queue, count and selection.
func TestAuditCommand(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.run(t, "audit")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stdout), "\n")+1, "the header only: %q", r.stdout)
	for _, bad := range []string{"0", "10001", "-1"} {
		r = b.run(t, "audit", "--limit", bad)
		require.Equal(t, cli.ExitUsage, r.code, bad)
		require.Contains(t, r.stderr, "--limit", bad)
	}
	deadLetterVia(t, b.backend, "q1", `{}`)
	r = b.run(t, "dlq", "retry", "--queue", "q1", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	r = b.run(t, "dlq", "purge", "--all", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	// What the purge found depends on whether the retried message was
	// taken again meanwhile: the entry says what the command printed.
	purged := int(r.lines(t)[0]["purged"].(float64))
	es, err := b.backend.Audit(context.Background(), 10)
	require.NoError(t, err)
	require.Len(t, es, 2)
	require.Equal(t, pubsub.AuditEntry{Action: "dlq.purge", Count: purged, Detail: "all"}, pubsub.AuditEntry{Action: es[0].Action, Count: es[0].Count, Detail: es[0].Detail})
	require.Equal(t, pubsub.AuditEntry{Action: "dlq.retry", Queue: "q1", Count: 1}, pubsub.AuditEntry{Action: es[1].Action, Queue: es[1].Queue, Count: es[1].Count})
	require.Equal(t, pubsub.AuditRoleCLI, es[1].Role)
}
