package secretstore

import (
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	saDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	// DefaultAddr is where the server lives inside the cluster when neither STRONGROOM_ADDR nor VAULT_ADDR is set.
	DefaultAddr = "https://strongroom.strongroom.svc:8200"
)

// Settings has a right default for everything inside a Kubernetes pod. SettingsFromEnv reads the same variables as
// the Python client.
type Settings struct {
	Addr          string
	Role          string
	AuthMount     string
	KVMount       string
	TokenFile     string
	NamespaceFile string
	// CACert is a PEM bundle path, or "" for the system trust store.
	CACert  string
	Timeout time.Duration
	// MaxAttempts bounds retries of transient failures (connection errors, 5xx, 429) before ErrUnavailable.
	MaxAttempts int
	BackoffBase time.Duration
	BackoffCap  time.Duration
}

// DefaultSettings are the in-pod defaults, without looking at the environment.
func DefaultSettings() Settings {
	return Settings{
		Addr:          DefaultAddr,
		Role:          "default",
		AuthMount:     "kubernetes",
		KVMount:       "secret",
		TokenFile:     saDir + "/token",
		NamespaceFile: saDir + "/namespace",
		Timeout:       10 * time.Second,
		MaxAttempts:   6,
		BackoffBase:   200 * time.Millisecond,
		BackoffCap:    5 * time.Second,
	}
}

// SettingsFromEnv applies STRONGROOM_ADDR (or VAULT_ADDR), STRONGROOM_K8S_ROLE, STRONGROOM_K8S_MOUNT,
// STRONGROOM_KV_MOUNT, STRONGROOM_SA_TOKEN_FILE, STRONGROOM_NAMESPACE_FILE, STRONGROOM_CACERT (or VAULT_CACERT),
// STRONGROOM_TIMEOUT (seconds) and STRONGROOM_MAX_ATTEMPTS to the defaults.
func SettingsFromEnv() Settings {
	s := DefaultSettings()
	pick := func(names ...string) string {
		for _, n := range names {
			if v := os.Getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	if v := pick("STRONGROOM_ADDR", "VAULT_ADDR"); v != "" {
		s.Addr = v
	}
	s.Addr = strings.TrimRight(s.Addr, "/")
	if v := pick("STRONGROOM_K8S_ROLE"); v != "" {
		s.Role = v
	}
	if v := pick("STRONGROOM_K8S_MOUNT"); v != "" {
		s.AuthMount = strings.Trim(v, "/")
	}
	if v := pick("STRONGROOM_KV_MOUNT"); v != "" {
		s.KVMount = strings.Trim(v, "/")
	}
	if v := pick("STRONGROOM_SA_TOKEN_FILE"); v != "" {
		s.TokenFile = v
	}
	if v := pick("STRONGROOM_NAMESPACE_FILE"); v != "" {
		s.NamespaceFile = v
	}
	s.CACert = pick("STRONGROOM_CACERT", "VAULT_CACERT")
	if v, err := strconv.ParseFloat(pick("STRONGROOM_TIMEOUT"), 64); err == nil && v > 0 {
		s.Timeout = time.Duration(v * float64(time.Second))
	}
	if v, err := strconv.Atoi(pick("STRONGROOM_MAX_ATTEMPTS")); err == nil {
		s.MaxAttempts = max(1, v)
	}
	return s
}
