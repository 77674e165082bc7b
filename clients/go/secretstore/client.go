package secretstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// renewAt: the cached token is renewed once this share of its TTL has passed.
const renewAt = 0.8

var segment = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

type cachedToken struct {
	value     string
	obtained  time.Time
	ttl       time.Duration
	renewable bool
}

func (t *cachedToken) fresh(now time.Time) bool {
	return t.ttl == 0 || now.Before(t.obtained.Add(time.Duration(float64(t.ttl)*renewAt)))
}

func (t *cachedToken) alive(now time.Time) bool {
	return t.ttl == 0 || now.Before(t.obtained.Add(t.ttl-2*time.Second))
}

// ClientStats counts what the client did, for tests and metrics.
type ClientStats struct {
	Logins   int
	Renewals int
}

// Client is a workload's connection to Strongroom: it logs in with the pod's ServiceAccount and keeps and renews its
// token. It is safe for concurrent use.
type Client struct {
	settings Settings
	http     *http.Client

	mu       sync.Mutex // guards token, identity and stats
	token    *cachedToken
	identity *PodIdentity
	stats    ClientStats
	// tokenMu serialises logins so that many goroutines starting at once log in only once
	tokenMu sync.Mutex
}

// NewClient makes a client from explicit settings (start from SettingsFromEnv or DefaultSettings).
func NewClient(s Settings) (*Client, error) {
	s.Addr = strings.TrimRight(s.Addr, "/")
	if s.MaxAttempts < 1 {
		s.MaxAttempts = 1
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if s.CACert != "" {
		pem, err := os.ReadFile(s.CACert)
		if err != nil {
			return nil, newError(ErrConfiguration, "", fmt.Sprintf("cannot read the CA bundle %s", s.CACert))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, newError(ErrConfiguration, "", fmt.Sprintf("no certificate in the CA bundle %s", s.CACert))
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{settings: s, http: &http.Client{Timeout: s.Timeout, Transport: transport}}, nil
}

var (
	defaultMu     sync.Mutex
	defaultClient *Client
)

// Default is the process-wide client, made from the environment on first use.
func Default() (*Client, error) {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if defaultClient == nil {
		c, err := NewClient(SettingsFromEnv())
		if err != nil {
			return nil, err
		}
		defaultClient = c
	}
	return defaultClient, nil
}

// Settings returns the settings this client runs with.
func (c *Client) Settings() Settings { return c.settings }

// Stats returns how many logins and token renewals the client made.
func (c *Client) Stats() ClientStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Identity is the pod's namespace and ServiceAccount, read once from the token and namespace files.
func (c *Client) Identity() (PodIdentity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.identity == nil {
		id, err := podIdentity(c.settings.TokenFile, c.settings.NamespaceFile)
		if err != nil {
			return PodIdentity{}, err
		}
		c.identity = &id
	}
	return *c.identity, nil
}

// SecretPath is the logical path a person reads in the docs: secret/k8s/<ns>/<sa>/<name>/<version>.
func (c *Client) SecretPath(name, version string) (string, error) {
	if err := checkName(name, "name"); err != nil {
		return "", err
	}
	if strings.Contains(version, "/") {
		return "", newError(ErrConfiguration, "", fmt.Sprintf("invalid version %q: a version is one path segment", version))
	}
	if err := checkName(version, "version"); err != nil {
		return "", err
	}
	id, err := c.Identity()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s/k8s/%s/%s/%s/%s", c.settings.KVMount, id.Namespace, id.ServiceAccount, name, version), nil
}

func checkName(name, what string) error {
	for _, p := range strings.Split(name, "/") {
		if !segment.MatchString(p) {
			return newError(ErrConfiguration, "", fmt.Sprintf(
				"invalid secret %s %q: use letters, digits, '.', '_', '-' and '/' between parts", what, name))
		}
	}
	return nil
}

// --- HTTP -----------------------------------------------------------------------------------------------------

type response struct {
	status int
	body   map[string]any
	raw    []byte
}

func (c *Client) do(ctx context.Context, method, path string, body any, token string) (*response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.settings.Addr+"/v1/"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Request", "true")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	out := &response{status: resp.StatusCode, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		_ = json.Unmarshal(raw, &out.body) // a body that is not JSON is judged by the caller
	}
	return out, nil
}

func (r *response) errors() string {
	if errs, ok := r.body["errors"].([]any); ok && len(errs) > 0 {
		parts := make([]string, 0, len(errs))
		for _, e := range errs {
			parts = append(parts, strings.TrimSpace(fmt.Sprint(e)))
		}
		s := strings.Join(parts, "; ")
		if len(s) > 200 {
			s = s[:200]
		}
		return s
	}
	return fmt.Sprintf("HTTP %d", r.status)
}

func transient(status int) bool { return status == 429 || status >= 500 }

// transportDetail names the kind of failure without the URL (which may carry userinfo) or any body.
func transportDetail(err error, addr string) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out talking to " + addr
	case errors.Is(err, context.Canceled):
		return "cancelled"
	default:
		return "cannot connect to " + addr
	}
}

// --- tokens ---------------------------------------------------------------------------------------------------

// Token returns a valid Strongroom token for this workload, logging in or renewing as needed.
func (c *Client) Token(ctx context.Context) (string, error) { return c.tokenFor(ctx, "login") }

func (c *Client) tokenFor(ctx context.Context, describe string) (string, error) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	c.mu.Lock()
	cached := c.token
	c.mu.Unlock()
	now := time.Now()
	if cached != nil && cached.fresh(now) {
		return cached.value, nil
	}
	if cached != nil && cached.alive(now) && cached.renewable && c.renew(ctx, cached) {
		return cached.value, nil
	}
	return c.login(ctx, describe)
}

func (c *Client) login(ctx context.Context, describe string) (string, error) {
	s := c.settings
	jwt, err := readToken(s.TokenFile)
	if err != nil {
		return "", err
	}
	detail := "no attempt made"
	for attempt := 0; attempt < s.MaxAttempts; attempt++ {
		resp, err := c.do(ctx, "POST", "auth/"+s.AuthMount+"/login", map[string]string{"role": s.Role, "jwt": jwt}, "")
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return "", newError(ErrUnavailable, describe, "login: "+transportDetail(ctx.Err(), s.Addr))
			}
			detail = "login failed: " + transportDetail(err, s.Addr)
		case resp.status == 200:
			auth, _ := resp.body["auth"].(map[string]any)
			token, _ := auth["client_token"].(string)
			if token == "" {
				return "", newError(ErrUnavailable, describe, "login returned no token")
			}
			ttl, _ := auth["lease_duration"].(float64)
			renewable, _ := auth["renewable"].(bool)
			c.mu.Lock()
			c.token = &cachedToken{token, time.Now(), time.Duration(ttl) * time.Second, renewable}
			c.stats.Logins++
			c.mu.Unlock()
			return token, nil
		case !transient(resp.status):
			return "", newError(ErrPermissionDenied, describe, fmt.Sprintf("kubernetes login refused (%s)", resp.errors()))
		default:
			detail = "login failed: " + resp.errors()
		}
		if attempt+1 < s.MaxAttempts {
			if sleep(ctx, backoffDelay(attempt, s.BackoffBase, s.BackoffCap, fullJitter)) != nil {
				return "", newError(ErrUnavailable, describe, "cancelled")
			}
		}
	}
	return "", newError(ErrUnavailable, describe, detail)
}

func (c *Client) renew(ctx context.Context, cached *cachedToken) bool {
	resp, err := c.do(ctx, "POST", "auth/token/renew-self", map[string]any{}, cached.value)
	if err != nil || resp.status != 200 {
		return false
	}
	auth, _ := resp.body["auth"].(map[string]any)
	ttl, _ := auth["lease_duration"].(float64)
	// a renewal that gains little (max TTL reached) is not worth keeping; log in again instead
	if ttl <= 60 {
		return false
	}
	renewable, _ := auth["renewable"].(bool)
	c.mu.Lock()
	c.token = &cachedToken{cached.value, time.Now(), time.Duration(ttl) * time.Second, renewable}
	c.stats.Renewals++
	c.mu.Unlock()
	return true
}

func (c *Client) forgetToken() {
	c.mu.Lock()
	c.token = nil
	c.mu.Unlock()
}

// --- requests -------------------------------------------------------------------------------------------------

// Request is an authenticated API call (path under /v1/) with the client's retries and typed errors. It returns
// the decoded body, or nil for 204.
func (c *Client) Request(ctx context.Context, method, path string, body any) (map[string]any, error) {
	return c.call(ctx, method, path, body, path)
}

func (c *Client) call(ctx context.Context, method, path string, body any, describe string) (map[string]any, error) {
	s := c.settings
	relogged := false
	detail := "no attempt made"
	for attempt := 0; attempt < s.MaxAttempts; {
		c.mu.Lock()
		hadToken := c.token != nil
		c.mu.Unlock()
		token, err := c.tokenFor(ctx, describe)
		if err != nil {
			return nil, err
		}
		resp, err := c.do(ctx, method, path, body, token)
		if err != nil {
			if ctx.Err() != nil {
				return nil, newError(ErrUnavailable, describe, transportDetail(ctx.Err(), s.Addr))
			}
			detail = transportDetail(err, s.Addr)
		} else {
			switch {
			case resp.status == 204:
				return nil, nil
			case resp.status < 300:
				if resp.body == nil {
					return nil, newError(ErrUnavailable, describe, "the server sent a body that is not JSON")
				}
				return resp.body, nil
			case resp.status == 404:
				return nil, newError(ErrNotFound, describe, "")
			case resp.status == 403:
				// A cached token may have expired or been revoked: log in once more before calling it a denial.
				if hadToken && !relogged {
					relogged = true
					c.forgetToken()
					continue
				}
				return nil, newError(ErrPermissionDenied, describe, "")
			case !transient(resp.status):
				return nil, newError(ErrRefused, describe, resp.errors())
			}
			detail = resp.errors()
		}
		attempt++
		if attempt < s.MaxAttempts {
			if sleep(ctx, backoffDelay(attempt-1, s.BackoffBase, s.BackoffCap, fullJitter)) != nil {
				return nil, newError(ErrUnavailable, describe, "cancelled")
			}
		}
	}
	return nil, newError(ErrUnavailable, describe, detail)
}

// Read returns the value under key "data" of secret/k8s/<ns>/<sa>/<name>/<version>.
func (c *Client) Read(ctx context.Context, name, version string) (any, error) {
	logical, err := c.SecretPath(name, version)
	if err != nil {
		return nil, err
	}
	mount, rest, _ := strings.Cut(logical, "/")
	body, err := c.call(ctx, "GET", mount+"/data/"+rest, nil, logical)
	if err != nil {
		return nil, err
	}
	outer, _ := body["data"].(map[string]any)
	data, _ := outer["data"].(map[string]any)
	value, ok := data["data"]
	if !ok {
		return nil, newError(ErrNotFound, logical, "")
	}
	return value, nil
}

// Ready is for readiness probes: true when this workload can log in and the server answers.
func (c *Client) Ready(ctx context.Context) bool {
	_, err := c.call(ctx, "GET", "auth/token/lookup-self", nil, "auth/token/lookup-self")
	return err == nil
}

// Path is a handle on one secret version of this workload; nothing is read until String, Bytes or JSON.
func (c *Client) Path(name, version string) *SecretPath {
	return &SecretPath{client: c, name: name, version: version}
}

// Path is Default().Path(name, version): the one line a service writes.
func Path(name, version string) *SecretPath {
	c, err := Default()
	return &SecretPath{client: c, err: err, name: name, version: version}
}

// Ready is Default().Ready with a timeout of the client's request timeout, for readiness probes.
func Ready() bool {
	c, err := Default()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.settings.Timeout)
	defer cancel()
	return c.Ready(ctx)
}
