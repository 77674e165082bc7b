package secretstore

import (
	"context"
	"encoding/json"
)

// SecretPath is secret/k8s/<ns>/<sa>/<name>/<version>, key "data": read it as a string, bytes or JSON.
type SecretPath struct {
	client  *Client
	err     error // from making the default client
	name    string
	version string
}

func (p *SecretPath) read(ctx context.Context) (string, any, error) {
	if p.err != nil {
		return "", nil, p.err
	}
	logical, err := p.client.SecretPath(p.name, p.version)
	if err != nil {
		return "", nil, err
	}
	v, err := p.client.Read(ctx, p.name, p.version)
	return logical, v, err
}

// String reads the secret as a string (context.Background; see StringContext).
func (p *SecretPath) String() (string, error) { return p.StringContext(context.Background()) }

// StringContext reads the secret as a string.
func (p *SecretPath) StringContext(ctx context.Context) (string, error) {
	logical, v, err := p.read(ctx)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", newError(ErrRefused, logical, "the secret is not a string")
	}
	return s, nil
}

// Bytes reads the secret as bytes (context.Background; see BytesContext).
func (p *SecretPath) Bytes() ([]byte, error) { return p.BytesContext(context.Background()) }

// BytesContext reads the secret as bytes.
func (p *SecretPath) BytesContext(ctx context.Context) ([]byte, error) {
	s, err := p.StringContext(ctx)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// JSON decodes the secret into v (context.Background; see JSONContext).
func (p *SecretPath) JSON(v any) error { return p.JSONContext(context.Background(), v) }

// JSONContext decodes the secret into v: a string value is parsed as JSON, any other value is converted as is.
func (p *SecretPath) JSONContext(ctx context.Context, v any) error {
	logical, value, err := p.read(ctx)
	if err != nil {
		return err
	}
	raw, isString := value.(string)
	var data []byte
	if isString {
		data = []byte(raw)
	} else if data, err = json.Marshal(value); err != nil {
		return newError(ErrRefused, logical, "the secret cannot be converted")
	}
	// never echo the value: the decoder's message could quote it
	if json.Unmarshal(data, v) != nil {
		return newError(ErrRefused, logical, "the secret is not valid JSON for the given type")
	}
	return nil
}
