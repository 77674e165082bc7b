// Command kmsv2client stores and reads a Secret-like value the way kube-apiserver does, through a KMS v2 plugin.
//
// It does not reimplement anything: the encryption configuration is loaded by kube-apiserver's own
// k8s.io/apiserver/pkg/server/options/encryptionconfig (which primes the plugin with Status, generates the DEK seed and
// encrypts it through the plugin with k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2), and `status` calls
// the plugin with the generated client from k8s.io/kms/apis/v2. Each run is one "API server start": a fresh process
// with an empty DEK cache, so reading a stored value always asks the plugin to decrypt its DEK seed.
//
// Usage (every command prints one JSON object on stdout and exits 1 with the error on stderr on failure):
//
//	kmsv2client -config enc.yaml write -key /registry/secrets/ns/name -in value -out stored
//	kmsv2client -config enc.yaml read  -key /registry/secrets/ns/name -in stored [-rewrite-out stored2]
//	kmsv2client -socket /path/kms.sock status
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
	"k8s.io/apiserver/pkg/storage/value"
	kmstypes "k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2/v2"
	kmsapi "k8s.io/kms/apis/v2"
)

// the prefix kube-apiserver writes in front of a KMS v2 envelope: k8s:enc:kms:v2:<provider name>:
const providerName = "strongroom"

var storedPrefix = []byte("k8s:enc:kms:v2:" + providerName + ":")

func main() {
	configPath := flag.String("config", "", "EncryptionConfiguration file (as given to kube-apiserver)")
	socket := flag.String("socket", "", "plugin Unix socket (status only)")
	flag.Parse()
	if flag.NArg() < 1 {
		fail(errors.New("missing command: write, read or status"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var out map[string]any
	var err error
	switch cmd, args := flag.Arg(0), flag.Args()[1:]; cmd {
	case "write":
		out, err = write(ctx, *configPath, args)
	case "read":
		out, err = read(ctx, *configPath, args)
	case "status":
		out, err = status(ctx, *socket)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kmsv2client:", err)
	os.Exit(1)
}

// secretsTransformer loads the configuration exactly as kube-apiserver does at start and returns the transformer it
// would use for core/v1 secrets.
func secretsTransformer(ctx context.Context, configPath string) (value.Transformer, error) {
	cfg, err := encryptionconfig.LoadEncryptionConfig(ctx, configPath, false, "kmsv2client")
	if err != nil {
		return nil, err
	}
	t, ok := cfg.Transformers[schema.GroupResource{Group: "", Resource: "secrets"}]
	if !ok {
		return nil, errors.New("the encryption configuration has no transformer for secrets")
	}
	return t, nil
}

func write(ctx context.Context, configPath string, args []string) (map[string]any, error) {
	fs := flag.NewFlagSet("write", flag.ExitOnError)
	key := fs.String("key", "", "etcd key, used as authenticated data")
	in := fs.String("in", "", "file holding the value to store")
	outPath := fs.String("out", "", "file to write the stored (encrypted) bytes to")
	_ = fs.Parse(args)
	plain, err := os.ReadFile(*in)
	if err != nil {
		return nil, err
	}
	t, err := secretsTransformer(ctx, configPath)
	if err != nil {
		return nil, err
	}
	stored, err := t.TransformToStorage(ctx, plain, value.DefaultContext(*key))
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	// read back in the same "API server", as a GET right after a create would
	back, stale, err := t.TransformFromStorage(ctx, stored, value.DefaultContext(*key))
	if err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	if !bytes.Equal(back, plain) || stale {
		return nil, fmt.Errorf("read back differs (stale=%v)", stale)
	}
	if err := os.WriteFile(*outPath, stored, 0o600); err != nil {
		return nil, err
	}
	return describe(stored)
}

func read(ctx context.Context, configPath string, args []string) (map[string]any, error) {
	fs := flag.NewFlagSet("read", flag.ExitOnError)
	key := fs.String("key", "", "etcd key, used as authenticated data")
	in := fs.String("in", "", "file holding the stored bytes")
	rewrite := fs.String("rewrite-out", "", "if the value is stale, store it again (as storage migration does) here")
	_ = fs.Parse(args)
	stored, err := os.ReadFile(*in)
	if err != nil {
		return nil, err
	}
	t, err := secretsTransformer(ctx, configPath)
	if err != nil {
		return nil, err
	}
	plain, stale, err := t.TransformFromStorage(ctx, stored, value.DefaultContext(*key))
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	out, err := describe(stored)
	if err != nil {
		return nil, err
	}
	out["plaintext"] = string(plain)
	out["stale"] = stale
	if *rewrite != "" {
		again, err := t.TransformToStorage(ctx, plain, value.DefaultContext(*key))
		if err != nil {
			return nil, fmt.Errorf("re-encrypt: %w", err)
		}
		if err := os.WriteFile(*rewrite, again, 0o600); err != nil {
			return nil, err
		}
		rewritten, err := describe(again)
		if err != nil {
			return nil, err
		}
		out["rewritten_key_id"] = rewritten["key_id"]
	}
	return out, nil
}

// describe decodes the envelope kube-apiserver stored, to report which KMS key ID it names.
func describe(stored []byte) (map[string]any, error) {
	if !bytes.HasPrefix(stored, storedPrefix) {
		return nil, fmt.Errorf("stored value does not start with %q", storedPrefix)
	}
	var obj kmstypes.EncryptedObject
	if err := proto.Unmarshal(stored[len(storedPrefix):], &obj); err != nil {
		return nil, err
	}
	return map[string]any{
		"key_id":                    obj.KeyID,
		"encrypted_dek_source_type": obj.EncryptedDEKSourceType.String(),
		"encrypted_dek_source_len":  len(obj.EncryptedDEKSource),
	}, nil
}

func status(ctx context.Context, socket string) (map[string]any, error) {
	conn, err := grpc.NewClient("passthrough:///kms",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := kmsapi.NewKeyManagementServiceClient(conn).Status(ctx, &kmsapi.StatusRequest{})
	if err != nil {
		return nil, err
	}
	return map[string]any{"version": resp.Version, "healthz": resp.Healthz, "key_id": resp.KeyId}, nil
}
