package controller

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// HeartbeatKeyField is the key of the heartbeat Secret holding the key that authenticates
// the speakers' heartbeat frames.
const HeartbeatKeyField = "key"

// heartbeatKeyBytes is the length of a generated heartbeat key.
const heartbeatKeyBytes = 32

// HeartbeatKey is a runnable that makes sure the heartbeat Secret holds a key, generating a
// random one when it is missing or empty, as MetalLB's controller does for its memberlist
// Secret. The manifests ship the Secret without data so that no key is ever committed.
type HeartbeatKey struct {
	// Reader reads the Secret live (a cache would watch every Secret); Writer writes it.
	Reader client.Reader
	Writer client.Client
	// Namespace and Name name the Secret.
	Namespace, Name string
}

// NeedLeaderElection: one writer is enough, and avoids two replicas racing to create keys.
func (h *HeartbeatKey) NeedLeaderElection() bool { return true }

// Start ensures the key, retrying every few seconds until it succeeds or ctx ends.
func (h *HeartbeatKey) Start(ctx context.Context) error {
	for {
		err := h.Ensure(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}

// Ensure creates the Secret or fills in its key when needed; an existing key is kept.
func (h *HeartbeatKey) Ensure(ctx context.Context) error {
	key := types.NamespacedName{Namespace: h.Namespace, Name: h.Name}
	var s corev1.Secret
	err := h.Reader.Get(ctx, key, &s)
	switch {
	case err == nil && len(s.Data[HeartbeatKeyField]) > 0:
		return nil
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("reading heartbeat Secret %s: %w", key, err)
	}
	secretKey := make([]byte, heartbeatKeyBytes)
	if _, rerr := rand.Read(secretKey); rerr != nil {
		return rerr
	}
	if apierrors.IsNotFound(err) {
		s = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.Namespace, Name: h.Name}, Type: corev1.SecretTypeOpaque}
		s.Data = map[string][]byte{HeartbeatKeyField: secretKey}
		if err := h.Writer.Create(ctx, &s); err != nil {
			return fmt.Errorf("creating heartbeat Secret %s: %w", key, err)
		}
		return nil
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[HeartbeatKeyField] = secretKey
	if err := h.Writer.Update(ctx, &s); err != nil {
		return fmt.Errorf("writing the key of heartbeat Secret %s: %w", key, err)
	}
	return nil
}
