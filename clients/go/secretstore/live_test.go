//go:build live

// Tests against a real Strongroom server inside a simulated pod. tests/clients_go/test_go_client.py starts the server
// (dev mode) and PostgreSQL, writes the pod's token and namespace files and runs `go test -tags live` with:
//
//	STRONGROOM_ADDR, STRONGROOM_SA_TOKEN_FILE, STRONGROOM_NAMESPACE_FILE   the pod (default/s-emoji), as in a cluster
//	SRTEST_CANARY       the value of canary/2019-05-11; config/v1 holds {"pool": 5, "host": "db"}
//	SRTEST_OUT          a directory where the test hands database credentials to pytest, which tries them on PostgreSQL
//
// and a stored database role k8s_rw_s-emoji_default (TTL 3s, max TTL 8s) and k8s_ro_s-emoji_default (TTL 4s).
package secretstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func need(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run these tests through tests/clients_go (pytest)", name)
	}
	return v
}

func podClient(t *testing.T, mutate func(*Settings)) *Client {
	t.Helper()
	s := SettingsFromEnv()
	s.BackoffBase = 20 * time.Millisecond
	if mutate != nil {
		mutate(&s)
	}
	c, err := NewClient(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReadsItsOwnSecretWithNoConfiguration(t *testing.T) {
	want := need(t, "SRTEST_CANARY")
	need(t, "STRONGROOM_SA_TOKEN_FILE")
	// the reference's one-liner, with nothing but the pod's environment
	password, err := Path("canary", "2019-05-11").String()
	if err != nil || password != want {
		t.Fatalf("Path(...).String() = %q, %v", password, err)
	}
	b, err := Path("canary", "2019-05-11").Bytes()
	if err != nil || string(b) != want {
		t.Fatalf("Bytes() = %q, %v", b, err)
	}
	var cfg struct {
		Pool int    `json:"pool"`
		Host string `json:"host"`
	}
	if err := Path("config", "v1").JSON(&cfg); err != nil || cfg.Pool != 5 || cfg.Host != "db" {
		t.Fatalf("JSON() = %+v, %v", cfg, err)
	}
	if !Ready() {
		t.Fatal("Ready() must be true inside a pod that can log in")
	}
}

func TestTypedErrorsNameThePathNeverTheValue(t *testing.T) {
	c := podClient(t, nil)
	ctx := context.Background()
	_, err := c.Path("canary", "1999-01-01").StringContext(ctx)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "secret/k8s/default/s-emoji/canary/1999-01-01") {
		t.Fatalf("missing version: %v", err)
	}
	_, err = c.Request(ctx, "GET", "secret/data/k8s/default/s-ledger/canary/2019-05-11", nil)
	if !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("another service's secret: %v", err)
	}
	var typed *Error
	if !errors.As(err, &typed) || typed.Path != "secret/data/k8s/default/s-ledger/canary/2019-05-11" {
		t.Fatalf("want *Error naming the path, got %#v", err)
	}
	var n int
	if err := c.Path("canary", "2019-05-11").JSONContext(ctx, &n); !errors.Is(err, ErrRefused) ||
		strings.Contains(err.Error(), os.Getenv("SRTEST_CANARY")) {
		t.Fatalf("a value that is not JSON must be refused without echoing it, got %v", err)
	}

	// a pod that lies about its namespace still only gets what its token proves
	dir := t.TempDir()
	liarNS := filepath.Join(dir, "namespace")
	if err := os.WriteFile(liarNS, []byte("payments"), 0o600); err != nil {
		t.Fatal(err)
	}
	liar := podClient(t, func(s *Settings) { s.NamespaceFile = liarNS })
	if _, err := liar.Path("canary", "2019-05-11").String(); !errors.Is(err, ErrPermissionDenied) ||
		!strings.Contains(err.Error(), "secret/k8s/payments/s-emoji/canary/2019-05-11") {
		t.Fatalf("liar: %v", err)
	}

	// a role that does not exist: the login is refused, not retried
	stranger := podClient(t, func(s *Settings) { s.Role = "no-such-role" })
	if _, err := stranger.Path("canary", "2019-05-11").String(); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("unknown role: %v", err)
	}
	if stranger.Ready(ctx) {
		t.Fatal("Ready() must be false when the login is refused")
	}
}

func TestUnreachableServerIsUnavailableAndContextsAreHonoured(t *testing.T) {
	down := podClient(t, func(s *Settings) { s.Addr = "http://127.0.0.1:9"; s.MaxAttempts = 3 })
	_, err := down.Path("canary", "2019-05-11").String()
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "canary/2019-05-11") {
		t.Fatalf("unreachable: %v", err)
	}
	if down.Ready(context.Background()) {
		t.Fatal("Ready() must be false when the server cannot be reached")
	}
	slow := podClient(t, func(s *Settings) {
		s.Addr, s.MaxAttempts, s.BackoffBase, s.BackoffCap = "http://127.0.0.1:9", 50, time.Second, time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err = slow.Path("canary", "2019-05-11").StringContext(ctx)
	if !errors.Is(err, ErrUnavailable) || time.Since(began) > 3*time.Second {
		t.Fatalf("a cancelled context must stop the retries: %v after %v", err, time.Since(began))
	}
}

func TestTokenIsCachedRenewedAndReplacedWhenRevoked(t *testing.T) {
	c := podClient(t, nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := c.Path("canary", "2019-05-11").StringContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Logins != 1 || st.Renewals != 0 {
		t.Fatalf("three reads should share one login, got %+v", st)
	}
	// past 80 % of the token's TTL the client renews it (auth/token/renew-self) instead of logging in again
	c.mu.Lock()
	c.token.obtained = time.Now().Add(-time.Duration(float64(c.token.ttl) * 0.85))
	first := c.token.value
	c.mu.Unlock()
	if _, err := c.Path("canary", "2019-05-11").StringContext(ctx); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Logins != 1 || st.Renewals != 1 {
		t.Fatalf("want one renewal, got %+v", st)
	}
	// a token revoked behind the client's back: one 403, one new login, and the read succeeds
	if _, err := c.Request(ctx, "POST", "auth/token/revoke-self", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Path("canary", "2019-05-11").StringContext(ctx); err != nil {
		t.Fatalf("read after revocation: %v", err)
	}
	c.mu.Lock()
	second := c.token.value
	c.mu.Unlock()
	if st := c.Stats(); st.Logins != 2 || second == first {
		t.Fatalf("want a second login with a new token, got %+v", st)
	}
}

// confirmLogin hands the credentials to pytest, which logs in to PostgreSQL with them while the lease is live and
// answers "ok" or "refused" in <name>.result.
func confirmLogin(t *testing.T, name string, creds Credentials) {
	t.Helper()
	out := need(t, "SRTEST_OUT")
	body := []byte(creds.Username + "\n" + creds.Password + "\n")
	if err := os.WriteFile(filepath.Join(out, name+".tmp"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(out, name+".tmp"), filepath.Join(out, name+".creds")); err != nil {
		t.Fatal(err)
	}
	var result []byte
	waitUntil(t, "pytest to try "+name, 30*time.Second, func() bool {
		var err error
		result, err = os.ReadFile(filepath.Join(out, name+".result"))
		return err == nil
	})
	if string(result) != "ok" {
		t.Fatalf("PostgreSQL refused the %s credentials: %s", name, result)
	}
}

func TestDatabaseCredentialsRenewThenFetchNewAtMaxTTL(t *testing.T) {
	var mu sync.Mutex
	var changes []Credentials
	// as the README shows it: the default client, configured by the pod alone
	live, err := DatabaseCredentials(context.Background(), "rw", DatabaseOptions{
		BackoffInitial: 200 * time.Millisecond, BackoffMax: time.Second,
		OnChange: func(cr Credentials) { mu.Lock(); changes = append(changes, cr); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	if live.RoleName() != "k8s_rw_s-emoji_default" {
		t.Fatalf("the pod's role is k8s_<role>_<sa>_<namespace>, got %s", live.RoleName())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	first, err := live.Wait(ctx)
	if err != nil || !live.Ready() {
		t.Fatalf("Wait: %v", err)
	}
	confirmLogin(t, "first", first)
	waitUntil(t, "a renewal", 15*time.Second, func() bool { return live.Stats().Renewals >= 1 })
	if cur, _ := live.Current(); cur.LeaseID != first.LeaseID {
		t.Fatal("a renewal must keep the same lease")
	}
	// max TTL 8s: renewals stop extending the lease, so new credentials are fetched and OnChange says so
	waitUntil(t, "a new fetch", 30*time.Second, func() bool { return live.Stats().Fetches >= 2 })
	second, _ := live.Current()
	if second.LeaseID == first.LeaseID || second.Username == first.Username {
		t.Fatalf("want new credentials, got %v after %v", second, first)
	}
	mu.Lock()
	if len(changes) < 2 || changes[0].LeaseID != first.LeaseID || changes[1].LeaseID != second.LeaseID {
		t.Fatalf("OnChange must see each new set in order, got %v", changes)
	}
	mu.Unlock()
	confirmLogin(t, "second", second)
	if err := live.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
}

// proxy forwards TCP to the real server and can cut every connection, to take the server away from the client.
type proxy struct {
	target string
	ln     net.Listener
	addr   string
	mu     sync.Mutex
	conns  []net.Conn
}

func (p *proxy) start(t *testing.T) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if p.ln, err = net.Listen("tcp", p.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.addr = p.ln.Addr().String()
	go func(ln net.Listener) {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}(p.ln)
}

func (p *proxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

func TestDatabaseCredentialsBackOffWhileTheServerIsAwayAndRecover(t *testing.T) {
	u, err := url.Parse(need(t, "STRONGROOM_ADDR"))
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: u.Host, addr: "127.0.0.1:0"}
	p.start(t)
	defer p.stop()
	c := podClient(t, func(s *Settings) { s.Addr = "http://" + p.addr; s.MaxAttempts = 2 })
	live, err := c.DatabaseCredentials(context.Background(), "ro", DatabaseOptions{
		BackoffInitial: 200 * time.Millisecond, BackoffMax: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close(context.Background(), true)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := live.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	p.stop()
	waitUntil(t, "failed renewals", 20*time.Second, func() bool { return live.Stats().Failures >= 2 })
	if live.Stats().LastError == "" {
		t.Fatal("the last error must be kept for diagnosis")
	}
	before := live.Stats().Renewals + live.Stats().Fetches
	p.start(t)
	waitUntil(t, "recovery", 20*time.Second, func() bool { return live.Stats().Renewals+live.Stats().Fetches > before })
	cur, err := live.Current()
	if err != nil || !live.Ready() {
		t.Fatalf("after recovery: %v", err)
	}
	confirmLogin(t, "recovered", cur)
}

type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNotReadyUntilCredentialsAndTheFallbackIsLoud(t *testing.T) {
	c := podClient(t, func(s *Settings) { s.Addr = "http://127.0.0.1:9"; s.MaxAttempts = 1 })
	quick := DatabaseOptions{RoleName: "rw", BackoffInitial: 100 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	live, err := c.DatabaseCredentials(context.Background(), "rw", quick)
	if err != nil {
		t.Fatal(err)
	}
	if live.Ready() {
		t.Fatal("Ready() before any credentials")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := live.Wait(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Wait without a server: %v", err)
	}
	_ = live.Close(context.Background(), false)

	logs := &logBuffer{}
	withFallback := quick
	withFallback.Fallback = &[2]string{"legacy", "legacy-pw"}
	withFallback.Logger = slog.New(slog.NewTextHandler(logs, nil))
	live, err = c.DatabaseCredentials(context.Background(), "rw", withFallback)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close(context.Background(), false)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	got, err := live.Wait(ctx2)
	if err != nil || !got.Fallback || got.Username != "legacy" || !live.Ready() {
		t.Fatalf("fallback: %v %v", got, err)
	}
	waitUntil(t, "a loud log line", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "USING FALLBACK DATABASE CREDENTIALS")
	})
	if strings.Contains(logs.String(), "legacy-pw") {
		t.Fatal("the fallback password reached the log")
	}
}
