package secretstore

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// PodIdentity is who this pod is: the namespace and ServiceAccount its token names.
type PodIdentity struct {
	Namespace      string
	ServiceAccount string
}

// readToken re-reads the file on every login: projected tokens are rotated by the kubelet while the pod runs.
func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", newError(ErrConfiguration, "", fmt.Sprintf("cannot read the ServiceAccount token file %s", file))
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", newError(ErrConfiguration, "", fmt.Sprintf("the ServiceAccount token file %s is empty", file))
	}
	return tok, nil
}

// claimsIdentity reads namespace and ServiceAccount name from the token's claims (projected or legacy shape). The
// signature is not checked here: the server verifies the token at login; the client only needs its own path.
func claimsIdentity(token string) (namespace, name string, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", "", newError(ErrConfiguration, "", "the ServiceAccount token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", "", newError(ErrConfiguration, "", "the ServiceAccount token is not a JWT")
	}
	var claims struct {
		Kubernetes *struct {
			Namespace      string `json:"namespace"`
			ServiceAccount struct {
				Name string `json:"name"`
			} `json:"serviceaccount"`
		} `json:"kubernetes.io"`
		LegacyNamespace string `json:"kubernetes.io/serviceaccount/namespace"`
		LegacyName      string `json:"kubernetes.io/serviceaccount/service-account.name"`
		Subject         string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return "", "", newError(ErrConfiguration, "", "the ServiceAccount token is not a JWT")
	}
	if claims.Kubernetes != nil {
		namespace, name = claims.Kubernetes.Namespace, claims.Kubernetes.ServiceAccount.Name
	} else {
		namespace, name = claims.LegacyNamespace, claims.LegacyName
	}
	if sub := strings.Split(claims.Subject, ":"); len(sub) == 4 && sub[0] == "system" && sub[1] == "serviceaccount" {
		if namespace == "" {
			namespace = sub[2]
		}
		if name == "" {
			name = sub[3]
		}
	}
	return namespace, name, nil
}

func podIdentity(tokenFile, namespaceFile string) (PodIdentity, error) {
	tok, err := readToken(tokenFile)
	if err != nil {
		return PodIdentity{}, err
	}
	nsClaim, name, err := claimsIdentity(tok)
	if err != nil {
		return PodIdentity{}, err
	}
	namespace := nsClaim
	if b, err := os.ReadFile(namespaceFile); err == nil && strings.TrimSpace(string(b)) != "" {
		namespace = strings.TrimSpace(string(b))
	}
	if name == "" {
		return PodIdentity{}, newError(ErrConfiguration, "", "the ServiceAccount token names no ServiceAccount")
	}
	if namespace == "" {
		return PodIdentity{}, newError(ErrConfiguration, "",
			fmt.Sprintf("no namespace: %s is missing and the token names none", namespaceFile))
	}
	return PodIdentity{Namespace: namespace, ServiceAccount: name}, nil
}
