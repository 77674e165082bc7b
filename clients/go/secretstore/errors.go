package secretstore

import (
	"errors"
	"fmt"
)

// Sentinels for errors.Is. Messages name the path, never a value or a token.
var (
	// ErrNotFound: the secret version does not exist (or was deleted or destroyed).
	ErrNotFound = errors.New("secret not found")
	// ErrPermissionDenied: the server refused this workload that path, or refused its login.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnavailable: the server could not be reached, was sealed, or kept failing after every retry.
	ErrUnavailable = errors.New("secret store unavailable")
	// ErrConfiguration: the process does not look like a pod (no ServiceAccount token, no namespace, bad token).
	ErrConfiguration = errors.New("secretstore configuration")
	// ErrRefused: any other refusal by the server (a 4xx that is neither 403 nor 404), or a value of the wrong type.
	ErrRefused = errors.New("secretstore request refused")
)

// Error carries the kind (one of the sentinels), the path it concerns and a detail that never holds a secret.
type Error struct {
	Kind   error
	Path   string
	Detail string
}

func (e *Error) Error() string {
	switch {
	case e.Path == "":
		return fmt.Sprintf("%v: %s", e.Kind, e.Detail)
	case e.Detail == "":
		return fmt.Sprintf("%v: %s", e.Kind, e.Path)
	default:
		return fmt.Sprintf("%v: %s: %s", e.Kind, e.Path, e.Detail)
	}
}

func (e *Error) Unwrap() error { return e.Kind }

func newError(kind error, path, detail string) *Error {
	return &Error{Kind: kind, Path: path, Detail: detail}
}
