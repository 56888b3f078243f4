package speaker

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// HeartbeatKeyField is the key of the heartbeat Secret's data that holds the heartbeat key.
// The controller generates the key under this name when the Secret has none (it must stay
// equal to kube/controller.HeartbeatKeyField; a test checks that).
const HeartbeatKeyField = "key"

// MinHeartbeatKeyLen is the shortest key accepted: heartbeats are authenticated with
// HMAC-SHA256, and a key shorter than 16 bytes is guessable.
const MinHeartbeatKeyLen = 16

// HeartbeatKey returns the heartbeat key held by secret.
func HeartbeatKey(secret *corev1.Secret) ([]byte, error) {
	key, ok := secret.Data[HeartbeatKeyField]
	if !ok {
		return nil, fmt.Errorf("Secret %s/%s: data has no key %q", secret.Namespace, secret.Name, HeartbeatKeyField)
	}
	if len(key) < MinHeartbeatKeyLen {
		return nil, fmt.Errorf("Secret %s/%s: data.%s has %d bytes, want at least %d", secret.Namespace, secret.Name, HeartbeatKeyField, len(key), MinHeartbeatKeyLen)
	}
	return key, nil
}

// WaitForHeartbeatKey reads the heartbeat key from the Secret namespace/name, retrying every
// interval while the Secret is missing or unusable (it is normally created with the
// speakers, and may come a little after them). It returns when a key was read or ctx ends.
func WaitForHeartbeatKey(ctx context.Context, r client.Reader, namespace, name string, interval time.Duration, log logr.Logger) ([]byte, error) {
	for {
		var secret corev1.Secret
		err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &secret)
		if err == nil {
			var key []byte
			if key, err = HeartbeatKey(&secret); err == nil {
				return key, nil
			}
		}
		log.Info("waiting for the heartbeat Secret", "secret", namespace+"/"+name, "problem", err.Error())
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for heartbeat Secret %s/%s: %w (last problem: %v)", namespace, name, context.Cause(ctx), err)
		case <-time.After(interval):
		}
	}
}
