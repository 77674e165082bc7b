// Package secretstore is how a Go service reads its Strongroom secrets, with no configuration inside a pod.
//
//	password, err := secretstore.Path("canary", "2019-05-11").String()
//	// reads key "data" of secret/k8s/<namespace>/<service-account>/canary/2019-05-11
//
// The pod's ServiceAccount token is the only credential: the package logs in with the kubernetes auth method, keeps
// and renews the token, retries transient failures with jittered exponential backoff and returns errors that match
// ErrNotFound, ErrPermissionDenied, ErrUnavailable or ErrConfiguration with errors.Is. Every call has a Context form.
// DatabaseCredentials keeps short-lived database credentials renewed in the background.
//
// It mirrors the Python client (strongroom.secretstore): the same environment variables, defaults, retry and renewal
// rules, so a fleet behaves the same whatever language a service is written in.
package secretstore
