package secretstore

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func unsignedJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(b) + "." + enc([]byte("sig"))
}

func TestSettingsFromEnvMirrorsThePythonClient(t *testing.T) {
	t.Setenv("STRONGROOM_ADDR", "")
	t.Setenv("VAULT_ADDR", "https://vault.example:8200/")
	t.Setenv("STRONGROOM_K8S_ROLE", "payments")
	t.Setenv("STRONGROOM_SA_TOKEN_FILE", "/tmp/tok")
	t.Setenv("STRONGROOM_MAX_ATTEMPTS", "0")
	for _, unset := range []string{"STRONGROOM_NAMESPACE_FILE", "STRONGROOM_KV_MOUNT", "STRONGROOM_CACERT", "VAULT_CACERT"} {
		t.Setenv(unset, "")
	}
	s := SettingsFromEnv()
	if s.Addr != "https://vault.example:8200" || s.Role != "payments" || s.TokenFile != "/tmp/tok" || s.MaxAttempts != 1 {
		t.Fatalf("unexpected settings %+v", s)
	}
	if s.NamespaceFile != "/var/run/secrets/kubernetes.io/serviceaccount/namespace" || s.KVMount != "secret" {
		t.Fatalf("in-pod defaults lost: %+v", s)
	}
	t.Setenv("STRONGROOM_ADDR", "http://127.0.0.1:8200")
	if got := SettingsFromEnv().Addr; got != "http://127.0.0.1:8200" {
		t.Fatalf("STRONGROOM_ADDR must win over VAULT_ADDR, got %s", got)
	}
}

func TestIdentityFromProjectedAndLegacyTokens(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	ns := filepath.Join(dir, "namespace")
	projected := unsignedJWT(t, map[string]any{
		"sub":           "system:serviceaccount:default:s-emoji",
		"kubernetes.io": map[string]any{"namespace": "default", "serviceaccount": map[string]any{"name": "s-emoji"}},
	})
	legacy := unsignedJWT(t, map[string]any{
		"kubernetes.io/serviceaccount/namespace":            "payments",
		"kubernetes.io/serviceaccount/service-account.name": "s-ledger",
	})
	cases := []struct {
		token, nsFile, wantNS, wantSA string
	}{
		{projected, "", "default", "s-emoji"},
		{legacy, "", "payments", "s-ledger"},
		{projected, "other", "other", "s-emoji"}, // the namespace file wins, as in the Python client
	}
	for _, c := range cases {
		if err := os.WriteFile(tok, []byte(c.token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(ns)
		if c.nsFile != "" {
			if err := os.WriteFile(ns, []byte(c.nsFile), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		id, err := podIdentity(tok, ns)
		if err != nil || id.Namespace != c.wantNS || id.ServiceAccount != c.wantSA {
			t.Fatalf("podIdentity = %+v, %v; want %s/%s", id, err, c.wantNS, c.wantSA)
		}
	}
	if err := os.WriteFile(tok, []byte("not-a-jwt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := podIdentity(tok, ns); !errors.Is(err, ErrConfiguration) {
		t.Fatalf("a token that is not a JWT must be ErrConfiguration, got %v", err)
	}
	if _, err := podIdentity(filepath.Join(dir, "missing"), ns); !errors.Is(err, ErrConfiguration) {
		t.Fatalf("a missing token file must be ErrConfiguration, got %v", err)
	}
}

func TestInvalidNamesAreRefusedBeforeAnyRequest(t *testing.T) {
	c, err := NewClient(Settings{Addr: "http://127.0.0.1:9", TokenFile: "/nonexistent", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, nv := range [][2]string{{"../etc", "v1"}, {"canary", "a/b"}, {"", "v1"}, {"canary", ".."}} {
		_, err := c.Path(nv[0], nv[1]).String()
		if !errors.Is(err, ErrConfiguration) || !strings.Contains(err.Error(), "invalid") {
			t.Fatalf("Path(%q, %q) = %v, want an invalid-name error", nv[0], nv[1], err)
		}
	}
}

func TestBackoffGrowsToTheCapWithJitter(t *testing.T) {
	for attempt := 0; attempt < 70; attempt++ {
		d := backoffDelay(attempt, 200*time.Millisecond, 5*time.Second, halfJitter)
		step := min(200*time.Millisecond<<min(attempt, 20), 5*time.Second)
		if d < step/2 || d > step {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, step/2, step)
		}
	}
	seen := map[time.Duration]bool{}
	for i := 0; i < 100; i++ {
		seen[backoffDelay(3, time.Second, time.Minute, fullJitter).Round(time.Millisecond)] = true
	}
	if len(seen) < 20 {
		t.Fatalf("full jitter should spread delays, got %d distinct values", len(seen))
	}
}

func TestRenewalIsAboutEightyPercentOfTheLease(t *testing.T) {
	seen := map[time.Duration]bool{}
	for i := 0; i < 500; i++ {
		d := renewDelay(1000 * time.Second)
		if d < 750*time.Second || d > 850*time.Second {
			t.Fatalf("renewal after %v, want 750s..850s", d)
		}
		seen[d.Round(time.Second)] = true
	}
	if len(seen) < 20 {
		t.Fatalf("renewals should be jittered, got %d distinct values", len(seen))
	}
}

func TestCredentialsNeverPrintThePassword(t *testing.T) {
	c := Credentials{Username: "v-user", Password: "hunter2-secret", LeaseID: "database/creds/x/abc"}
	for _, s := range []string{c.String(), c.GoString()} {
		if strings.Contains(s, "hunter2-secret") || !strings.Contains(s, "v-user") {
			t.Fatalf("unexpected rendering %q", s)
		}
	}
}

func TestABadCABundleIsAConfigurationError(t *testing.T) {
	s := DefaultSettings()
	s.CACert = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := NewClient(s); !errors.Is(err, ErrConfiguration) {
		t.Fatalf("missing CA bundle: %v", err)
	}
	if err := os.WriteFile(s.CACert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(s); !errors.Is(err, ErrConfiguration) || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("CA bundle without a certificate: %v", err)
	}
}
