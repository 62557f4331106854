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

// newRecordingSigners wraps s. An RSA key is offered twice: preferring
// rsa-sha2-512 (with SHA-1 ssh-rsa only for servers that announce no
// algorithms), then as rsa-sha2-256 alone, because x/crypto tries one
// algorithm per key and a server may accept just one of the two.
func newRecordingSigners(s gossh.Signer) []*recordingSigner {
	_, isAlg := s.(gossh.AlgorithmSigner)
	if ms, ok := s.(gossh.MultiAlgorithmSigner); ok && s.PublicKey().Type() != gossh.KeyAlgoRSA {
		return []*recordingSigner{{inner: s, algos: ms.Algorithms()}}
	}
	if isAlg && s.PublicKey().Type() == gossh.KeyAlgoRSA {
		// Restricted MultiAlgorithmSigners (agent keys) keep their limits.
		allowed := []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
		if ms, ok := s.(gossh.MultiAlgorithmSigner); ok {
			allowed = ms.Algorithms()
		}
		first := intersect([]string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}, allowed)
		out := []*recordingSigner{{inner: s, algos: first}}
		if second := intersect([]string{gossh.KeyAlgoRSASHA256}, allowed); len(second) > 0 && len(first) > 1 {
			out = append(out, &recordingSigner{inner: s, algos: second})
		}
		return out
	}
	return []*recordingSigner{{inner: s, algos: []string{s.PublicKey().Type()}}}
}

func intersect(want, have []string) []string {
	var out []string
	for _, w := range want {
		for _, h := range have {
			if w == h {
				out = append(out, w)
				break
			}
		}
	}
	return out
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
