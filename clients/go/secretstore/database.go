package secretstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"time"
)

// The same renewal rules as the Python client (strongroom.secretstore.database):
//   - renew at about 80 % of the lease (uniform jitter of +-5 % of the lease, so a fleet does not renew in step),
//     asking for the lease's original duration each time;
//   - when renewal is impossible (lease gone, expired, not renewable, or its max TTL leaves less than a fifth of a
//     lease) fetch new credentials and call OnChange so the application can reconnect;
//   - on errors back off exponentially with jitter (at least half the step) and keep trying, forever; while the
//     current credentials are valid never sleep past half of what is left of them.
const (
	dbRenewAt = 0.8
	dbJitter  = 0.05
	dbGrace   = 0.2
)

var plainName = regexp.MustCompile(`^\w[\w.-]*$`)
var plainMount = regexp.MustCompile(`^\w[\w./-]*$`)

// Credentials are one database user issued as a lease. String never shows the password.
type Credentials struct {
	Username      string
	Password      string
	LeaseID       string
	LeaseDuration time.Duration
	ExpiresAt     time.Time
	Renewable     bool
	Fallback      bool
}

func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{Username: %q, LeaseID: %q, Fallback: %v}", c.Username, c.LeaseID, c.Fallback)
}

// GoString keeps %#v from printing the password too.
func (c Credentials) GoString() string { return c.String() }

// DatabaseOptions tune DatabaseCredentials; the zero value is right inside a pod.
type DatabaseOptions struct {
	// RoleName asks for this role instead of k8s_<role>_<service-account>_<namespace>.
	RoleName string
	// Mount is the database engine's mount, "database" by default.
	Mount string
	// OnChange is called (from the background goroutine) with every new set of credentials, not on renewals.
	OnChange func(Credentials)
	// Fallback (username, password) is used only while no credentials could be fetched, logged at ERROR each time.
	Fallback *[2]string
	// BackoffInitial and BackoffMax bound the retry delay: 10s and 5m by default.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// Logger receives warnings and the fallback's errors; slog.Default() when nil.
	Logger *slog.Logger
}

// DatabaseStats counts what the background loop did.
type DatabaseStats struct {
	Fetches   int
	Renewals  int
	Failures  int
	LastError string
}

// LiveCredentials keeps database credentials renewed in the background until Close or the context ends.
type LiveCredentials struct {
	client *Client
	opts   DatabaseOptions
	role   string
	path   string
	log    *slog.Logger

	mu      sync.Mutex
	current *Credentials
	stats   DatabaseStats
	have    chan struct{}
	once    sync.Once
	cancel  context.CancelFunc
	done    chan struct{}
}

type retryError struct{ detail string }

func (e *retryError) Error() string { return e.detail }

type refetchError struct{ detail string }

func (e *refetchError) Error() string { return e.detail }

// DatabaseCredentials starts live credentials for this service with the default client.
func DatabaseCredentials(ctx context.Context, role string, opts ...DatabaseOptions) (*LiveCredentials, error) {
	c, err := Default()
	if err != nil {
		return nil, err
	}
	return c.DatabaseCredentials(ctx, role, opts...)
}

// DatabaseCredentials starts live credentials for role ("rw", "ro", …): inside a pod the role asked for is
// k8s_<role>_<service-account>_<namespace>, the one built from the ServiceAccount's annotations. The background
// loop runs until ctx ends or Close is called.
func (c *Client) DatabaseCredentials(ctx context.Context, role string, opts ...DatabaseOptions) (*LiveCredentials, error) {
	var o DatabaseOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Mount == "" {
		o.Mount = "database"
	}
	o.Mount = strings.Trim(o.Mount, "/")
	if o.BackoffInitial <= 0 {
		o.BackoffInitial = 10 * time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Minute
	}
	name := o.RoleName
	if name == "" {
		name = role
		if !strings.HasPrefix(role, "k8s_") {
			if id, err := c.Identity(); err == nil {
				name = fmt.Sprintf("k8s_%s_%s_%s", role, id.ServiceAccount, id.Namespace)
			}
		}
	}
	if !plainName.MatchString(name) || !plainMount.MatchString(o.Mount) {
		return nil, newError(ErrConfiguration, "", "role and mount must be plain names")
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	loopCtx, cancel := context.WithCancel(ctx)
	l := &LiveCredentials{
		client: c, opts: o, role: name, path: o.Mount + "/creds/" + name, log: logger,
		have: make(chan struct{}), cancel: cancel, done: make(chan struct{}),
	}
	go l.run(loopCtx)
	return l, nil
}

// RoleName is the database role these credentials are issued for.
func (l *LiveCredentials) RoleName() string { return l.role }

// Ready is for readiness probes: true while unexpired credentials (or, if enabled and needed, the fallback) are held.
func (l *LiveCredentials) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current != nil && (l.current.Fallback || time.Now().Before(l.current.ExpiresAt))
}

// Wait blocks until credentials are held; ErrUnavailable when ctx ends first (the retries go on).
func (l *LiveCredentials) Wait(ctx context.Context) (Credentials, error) {
	select {
	case <-l.have:
		return l.Current()
	case <-ctx.Done():
		l.mu.Lock()
		last := l.stats.LastError
		l.mu.Unlock()
		if last == "" {
			last = "waiting"
		}
		return Credentials{}, newError(ErrUnavailable, l.path, "no database credentials yet ("+last+")")
	}
}

// Current returns the credentials held now.
func (l *LiveCredentials) Current() (Credentials, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current == nil {
		return Credentials{}, newError(ErrUnavailable, l.path, "no database credentials yet")
	}
	return *l.current, nil
}

// Stats returns the loop's counters.
func (l *LiveCredentials) Stats() DatabaseStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Close stops renewing; with revoke the lease (and so the database user) is revoked at once.
func (l *LiveCredentials) Close(ctx context.Context, revoke bool) error {
	l.cancel()
	<-l.done
	l.mu.Lock()
	cur := l.current
	l.mu.Unlock()
	if !revoke || cur == nil || cur.Fallback {
		return nil
	}
	if _, err := l.call(ctx, "PUT", "sys/leases/revoke", map[string]any{"lease_id": cur.LeaseID}); err != nil {
		return newError(ErrUnavailable, l.path, "revoking the lease on close failed")
	}
	return nil
}

func renewDelay(lease time.Duration) time.Duration {
	f := dbRenewAt - dbJitter + rand.Float64()*2*dbJitter
	return time.Duration(float64(lease) * f)
}

func (l *LiveCredentials) run(ctx context.Context) {
	defer close(l.done)
	attempt := 0
	var due time.Time
	for {
		if sleep(ctx, time.Until(due)) != nil {
			return
		}
		l.mu.Lock()
		cur := l.current
		l.mu.Unlock()
		var next Credentials
		var err error
		if cur == nil || cur.Fallback || !time.Now().Before(cur.ExpiresAt) {
			next, err = l.fetch(ctx)
		} else if next, err = l.renew(ctx, *cur); err != nil {
			var refetch *refetchError
			if errors.As(err, &refetch) {
				next, err = l.fetch(ctx)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			attempt = 0
			due = time.Now().Add(renewDelay(next.LeaseDuration))
			continue
		}
		attempt++
		l.mu.Lock()
		l.stats.Failures++
		l.stats.LastError = err.Error()
		l.mu.Unlock()
		delay := backoffDelay(attempt-1, l.opts.BackoffInitial, l.opts.BackoffMax, halfJitter)
		if cur != nil && !cur.Fallback {
			// never sleep past the point where the current credentials run out
			delay = min(delay, max(500*time.Millisecond, time.Until(cur.ExpiresAt)/2))
		}
		l.log.Warn("database credentials: retrying", "role", l.role, "error", err.Error(), "delay", delay)
		l.useFallbackIfNeeded()
		due = time.Now().Add(delay)
	}
}

func (l *LiveCredentials) fetch(ctx context.Context) (Credentials, error) {
	body, err := l.call(ctx, "GET", l.path, nil)
	if err != nil {
		return Credentials{}, err
	}
	data, _ := body["data"].(map[string]any)
	user, _ := data["username"].(string)
	pass, _ := data["password"].(string)
	lease, _ := body["lease_id"].(string)
	secs, _ := body["lease_duration"].(float64)
	renewable, _ := body["renewable"].(bool)
	if user == "" || lease == "" || secs <= 0 {
		return Credentials{}, &retryError{"the server returned incomplete credentials"}
	}
	d := time.Duration(secs) * time.Second
	creds := Credentials{user, pass, lease, d, time.Now().Add(d), renewable, false}
	l.mu.Lock()
	l.stats.Fetches++
	l.mu.Unlock()
	l.install(creds, true)
	return creds, nil
}

func (l *LiveCredentials) renew(ctx context.Context, cur Credentials) (Credentials, error) {
	if !cur.Renewable {
		return Credentials{}, &refetchError{"lease is not renewable"}
	}
	body, err := l.call(ctx, "PUT", "sys/leases/renew", map[string]any{
		"lease_id": cur.LeaseID, "increment": int(cur.LeaseDuration / time.Second),
	})
	if err != nil {
		if errors.Is(err, ErrPermissionDenied) {
			return Credentials{}, &refetchError{err.Error()}
		}
		return Credentials{}, err
	}
	secs, _ := body["lease_duration"].(float64)
	granted := time.Duration(secs) * time.Second
	if float64(granted) < float64(cur.LeaseDuration)*dbGrace {
		// the max TTL is close: renewals cannot keep these credentials alive much longer
		return Credentials{}, &refetchError{"lease is near its max TTL"}
	}
	renewed := cur
	renewed.ExpiresAt = time.Now().Add(granted)
	renewed.Renewable = true
	l.mu.Lock()
	l.stats.Renewals++
	l.mu.Unlock()
	l.install(renewed, false)
	return renewed, nil
}

func (l *LiveCredentials) install(creds Credentials, changed bool) {
	l.mu.Lock()
	l.current = &creds
	l.mu.Unlock()
	l.once.Do(func() { close(l.have) })
	if changed && l.opts.OnChange != nil {
		func() {
			defer func() {
				if r := recover(); r != nil {
					l.log.Error("database credentials: OnChange callback panicked", "role", l.role)
				}
			}()
			l.opts.OnChange(creds)
		}()
	}
}

func (l *LiveCredentials) useFallbackIfNeeded() {
	l.mu.Lock()
	cur := l.current
	l.mu.Unlock()
	if l.opts.Fallback == nil || (cur != nil && !cur.Fallback) {
		return
	}
	l.log.Error("USING FALLBACK DATABASE CREDENTIALS: Strongroom could not issue credentials",
		"role", l.role, "user", l.opts.Fallback[0])
	if cur == nil {
		far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
		l.install(Credentials{l.opts.Fallback[0], l.opts.Fallback[1], "", 0, far, false, true}, true)
	}
}

// call maps every failure to a retry, except a refused renewal (refetch) and 403 (permission denied).
func (l *LiveCredentials) call(ctx context.Context, method, path string, body any) (map[string]any, error) {
	token, err := l.client.Token(ctx)
	if err != nil {
		return nil, &retryError{"no Strongroom token: " + err.Error()}
	}
	resp, err := l.client.do(ctx, method, path, body, token)
	if err != nil {
		return nil, &retryError{"cannot reach Strongroom: " + transportDetail(err, l.client.settings.Addr)}
	}
	if transient(resp.status) {
		return nil, &retryError{fmt.Sprintf("Strongroom answered %d", resp.status)}
	}
	if len(resp.raw) > 0 && resp.body == nil {
		return nil, &retryError{fmt.Sprintf("unexpected response (%d)", resp.status)}
	}
	if resp.status == 403 {
		return nil, newError(ErrPermissionDenied, path, "")
	}
	if resp.status >= 400 {
		if strings.HasPrefix(path, "sys/leases/renew") {
			return nil, &refetchError{resp.errors()}
		}
		return nil, &retryError{resp.errors()}
	}
	return resp.body, nil
}
