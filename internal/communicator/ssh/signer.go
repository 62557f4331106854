package ssh

import (
	"io"
	"sync/atomic"

	gossh "golang.org/x/crypto/ssh"
)

// recordingSigner remembers the signature algorithm the server made it use,
// so logs and tests can tell rsa-sha2-512 from SHA-1 ssh-rsa.
type recordingSigner struct {
	inner gossh.Signer
	algos []string
	last  atomic.Value // string
}

func newRecordingSigner(s gossh.Signer) *recordingSigner {
	r := &recordingSigner{inner: s}
	switch ms := s.(type) {
	case gossh.MultiAlgorithmSigner:
		r.algos = ms.Algorithms()
	case gossh.AlgorithmSigner:
		if s.PublicKey().Type() == gossh.KeyAlgoRSA {
			// SHA-2 first: OpenSSH >= 8.8 refuses SHA-1 ssh-rsa.
			r.algos = []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
		} else {
			r.algos = []string{s.PublicKey().Type()}
		}
	default:
		r.algos = []string{s.PublicKey().Type()}
	}
	return r
}

func (r *recordingSigner) PublicKey() gossh.PublicKey { return r.inner.PublicKey() }

func (r *recordingSigner) Algorithms() []string { return r.algos }

func (r *recordingSigner) Sign(rand io.Reader, data []byte) (*gossh.Signature, error) {
	sig, err := r.inner.Sign(rand, data)
	if err == nil {
		r.last.Store(sig.Format)
	}
	return sig, err
}

func (r *recordingSigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*gossh.Signature, error) {
	as, ok := r.inner.(gossh.AlgorithmSigner)
	if !ok {
		return r.Sign(rand, data)
	}
	sig, err := as.SignWithAlgorithm(rand, data, algorithm)
	if err == nil {
		r.last.Store(sig.Format)
	}
	return sig, err
}

func (r *recordingSigner) used() string {
	s, _ := r.last.Load().(string)
	return s
}
