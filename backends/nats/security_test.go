package nats_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// These tests prove the connection parameters (tls://, tls_ca, tls_cert
// and tls_key, user:password, token, nkey, creds) against a real server
// that requires them, and that a connection without them fails.

// testPKI is a throwaway certificate authority with a server certificate
// for 127.0.0.1 and a client certificate, as PEM files in a directory.
type testPKI struct {
	caFile, clientCert, clientKey string
	serverCert                    tls.Certificate
	pool                          *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "quantumflow test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	// leaf signs a certificate for usage with the CA and writes it and its
	// key to dir/name.pem and dir/name-key.pem.
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		certFile = filepath.Join(dir, name+".pem")
		keyFile = filepath.Join(dir, name+"-key.pem")
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	p := &testPKI{caFile: filepath.Join(dir, "ca.pem"), pool: x509.NewCertPool()}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	p.pool.AddCert(ca)
	serverCert, serverKey := leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.serverCert, err = tls.LoadX509KeyPair(serverCert, serverKey)
	require.NoError(t, err)
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

// serverTLS is the server's TLS configuration; with mutual it requires a
// client certificate signed by the CA.
func (p *testPKI) serverTLS(mutual bool) func(*natsserver.Options) {
	return func(o *natsserver.Options) {
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{p.serverCert}, MinVersion: tls.VersionTLS12}
		if mutual {
			o.TLSConfig.ClientAuth = tls.RequireAndVerifyClientCert
			o.TLSConfig.ClientCAs = p.pool
			o.TLSVerify = true
		}
	}
}

// securedServer starts an embedded server for one test, configured by
// configure.
func securedServer(t *testing.T, configure func(*natsserver.Options)) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(t.Context(), embedded.Options{DataDir: t.TempDir(), Configure: configure})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// requireRoundTrip opens rawURL, publishes a message, consumes it and
// closes the backend (so that its subscription takes nothing from the
// next round trip on the same server).
func requireRoundTrip(t *testing.T, rawURL string) {
	t.Helper()
	b, err := pubsub.Open(t.Context(), rawURL, pubsub.WithLogger(testLogger(t)))
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	msgs := newMessages(1, "secured")
	require.NoError(t, b.Publisher().Publish("secured", msgs...))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := b.Subscriber().Subscribe(ctx, "secured")
	require.NoError(t, err)
	msg := pubsubtest.Receive(t, ch)
	require.Equal(t, msgs[0].UUID, msg.UUID)
	require.Equal(t, "secured", string(msg.Payload))
	msg.Ack()
}

// requireOpenFails opens rawURL and expects it to fail with an error that
// contains every one of want and none of secrets.
func requireOpenFails(t *testing.T, rawURL string, want []string, secrets ...string) {
	t.Helper()
	b, err := pubsub.Open(t.Context(), rawURL)
	if err == nil {
		_ = b.Close()
		t.Fatalf("Open succeeded; want an error containing %q", want)
	}
	t.Logf("Open failed as expected: %v", err)
	for _, w := range want {
		require.ErrorContains(t, err, w)
	}
	for _, s := range secrets {
		require.NotContains(t, err.Error(), s)
	}
}

func TestTLSServerVerifiedWithCA(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	srv := securedServer(t, pki.serverTLS(false))
	base := srv.ClientURL()
	require.True(t, strings.HasPrefix(base, "tls://"), base)

	requireRoundTrip(t, base+"?tls_ca="+url.QueryEscape(pki.caFile))
	// nats:// against a server that requires TLS upgrades to it, and
	// verifies the server with tls_ca all the same.
	requireRoundTrip(t, "nats://"+strings.TrimPrefix(base, "tls://")+"?tls_ca="+url.QueryEscape(pki.caFile))

	// Without the CA the server's certificate is not trusted.
	requireOpenFails(t, base, []string{"connect", "certificate signed by unknown authority"})
	// A missing CA file says so.
	requireOpenFails(t, base+"?tls_ca="+url.QueryEscape(filepath.Join(t.TempDir(), "nope.pem")), []string{"connect", "nope.pem"})
}

func TestTLSClientCertificate(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	srv := securedServer(t, pki.serverTLS(true))
	base := srv.ClientURL() + "?tls_ca=" + url.QueryEscape(pki.caFile)

	requireRoundTrip(t, base+"&tls_cert="+url.QueryEscape(pki.clientCert)+"&tls_key="+url.QueryEscape(pki.clientKey))
	// The server refuses a client without a certificate: it closes the
	// connection after the handshake (TLS 1.3 verifies the client late).
	requireOpenFails(t, base, []string{"connect", "tls"})
}

func TestUserPassword(t *testing.T) {
	t.Parallel()
	const password = "pa55-s3cret"
	srv := securedServer(t, func(o *natsserver.Options) {
		o.Username = "alice"
		o.Password = password
	})
	hostPort := strings.TrimPrefix(srv.ClientURL(), "nats://")

	requireRoundTrip(t, "nats://alice:"+password+"@"+hostPort)
	requireOpenFails(t, "nats://alice:wr0ng-s3cret@"+hostPort, []string{"connect", "Authorization Violation"}, "wr0ng-s3cret", password)
	requireOpenFails(t, "nats://"+hostPort, []string{"connect", "Authorization Violation"}, password)
}

func TestToken(t *testing.T) {
	t.Parallel()
	const token = "t0ken-s3cret"
	srv := securedServer(t, func(o *natsserver.Options) { o.Authorization = token })
	hostPort := strings.TrimPrefix(srv.ClientURL(), "nats://")

	requireRoundTrip(t, "nats://"+token+"@"+hostPort)
	requireOpenFails(t, "nats://wr0ng-t0ken@"+hostPort, []string{"connect", "Authorization Violation"}, "wr0ng-t0ken", token)
	requireOpenFails(t, "nats://"+hostPort, []string{"connect", "Authorization Violation"}, token)
}

func TestNkeySeedFile(t *testing.T) {
	t.Parallel()
	// seedFile creates a user nkey, writes its seed to a file and returns
	// the file, the seed and the public key.
	dir := t.TempDir()
	seedFile := func(name string) (string, string, string) {
		kp, err := nkeys.CreateUser()
		require.NoError(t, err)
		seed, err := kp.Seed()
		require.NoError(t, err)
		pub, err := kp.PublicKey()
		require.NoError(t, err)
		file := filepath.Join(dir, name+".nk")
		require.NoError(t, os.WriteFile(file, seed, 0o600))
		return file, string(seed), pub
	}
	allowed, allowedSeed, pub := seedFile("allowed")
	other, otherSeed, _ := seedFile("other")
	srv := securedServer(t, func(o *natsserver.Options) { o.Nkeys = []*natsserver.NkeyUser{{Nkey: pub}} })
	base := srv.ClientURL()

	requireRoundTrip(t, base+"?nkey="+url.QueryEscape(allowed))
	requireOpenFails(t, base+"?nkey="+url.QueryEscape(other), []string{"connect", "Authorization Violation"}, otherSeed, allowedSeed)
	requireOpenFails(t, base, []string{"connect", "Authorization Violation"})
}

func TestCredsFile(t *testing.T) {
	t.Parallel()
	// Operator mode: the server trusts an operator, the operator signs an
	// account with JetStream, the account signs the user of the creds file.
	newKP := func(create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, string) {
		kp, err := create()
		require.NoError(t, err)
		pub, err := kp.PublicKey()
		require.NoError(t, err)
		return kp, pub
	}
	opKP, opPub := newKP(nkeys.CreateOperator)
	_, sysPub := newKP(nkeys.CreateAccount)
	accKP, accPub := newKP(nkeys.CreateAccount)
	resolver := &natsserver.MemAccResolver{}
	for _, a := range []struct {
		pub string
		js  bool
	}{{sysPub, false}, {accPub, true}} {
		ac := jwt.NewAccountClaims(a.pub)
		if a.js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		accJWT, err := ac.Encode(opKP)
		require.NoError(t, err)
		require.NoError(t, resolver.Store(a.pub, accJWT))
	}
	creds := func(name string, signer nkeys.KeyPair) (string, string) {
		userKP, userPub := newKP(nkeys.CreateUser)
		uc := jwt.NewUserClaims(userPub)
		uc.IssuerAccount = accPub
		userJWT, err := uc.Encode(signer)
		require.NoError(t, err)
		seed, err := userKP.Seed()
		require.NoError(t, err)
		file, err := jwt.FormatUserConfig(userJWT, seed)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), name+".creds")
		require.NoError(t, os.WriteFile(path, file, 0o600))
		return path, string(seed)
	}
	good, goodSeed := creds("good", accKP)
	// A user signed by an account key the server does not know.
	strangerKP, _ := newKP(nkeys.CreateAccount)
	bad, badSeed := creds("bad", strangerKP)

	srv := securedServer(t, func(o *natsserver.Options) {
		o.TrustedKeys = []string{opPub}
		o.AccountResolver = resolver
		o.SystemAccount = sysPub
	})
	base := srv.ClientURL()
	requireRoundTrip(t, base+"?creds="+url.QueryEscape(good))
	requireOpenFails(t, base+"?creds="+url.QueryEscape(bad), []string{"connect", "Authorization Violation"}, badSeed, goodSeed)
	requireOpenFails(t, base, []string{"connect", "Authorization Violation"})
}
