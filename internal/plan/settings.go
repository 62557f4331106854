package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/scrypt"
)

// settings turns a plugin's decoded configuration into generic JSON-like
// values keyed by the option names of the template (the hcl struct tags),
// leaving out options that are not set, so that amibake versions that add
// options keep the digests of templates that do not use them.
func settings(v any) any {
	return toGeneric(reflect.ValueOf(v))
}

var durationType = reflect.TypeOf(time.Duration(0))

func toGeneric(v reflect.Value) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		out := map[string]any{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("hcl")
			if tag == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
				// An embedded struct's options (the shared AccessConfig)
				// are the block's own, as the template decoder takes them.
				if m, ok := toGeneric(v.Field(i)).(map[string]any); ok {
					maps.Copy(out, m)
				}
				continue
			}
			if tag == "" || !f.IsExported() {
				continue // derived values (Parsed) repeat what is written
			}
			name, _, _ := strings.Cut(tag, ",")
			fv := v.Field(i)
			if fv.IsZero() {
				continue
			}
			if g := toGeneric(fv); g != nil {
				out[name] = g
			}
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Len() == 0 {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = toGeneric(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return nil
		}
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[k.String()] = toGeneric(v.MapIndex(k))
		}
		return out
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() == durationType {
			return time.Duration(v.Int()).String()
		}
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint()
	case reflect.Float32, reflect.Float64:
		return v.Float()
	}
	return nil
}

// maskSecrets replaces, in place, every string that contains a sensitive
// value by a hash of that string: the value still changes the digest,
// but neither the digest's parts nor plan's output carry it.
func maskSecrets(v any, secrets []string) any {
	if len(secrets) == 0 {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = maskSecrets(e, secrets)
		}
		// A secret used as a map key is hashed as well.
		for k := range x {
			if containsSecret(k, secrets) {
				x[hashed(k)] = x[k]
				delete(x, k)
			}
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = maskSecrets(e, secrets)
		}
		return x
	case string:
		if containsSecret(x, secrets) {
			return hashed(x)
		}
	}
	return v
}

func containsSecret(s string, secrets []string) bool {
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			return true
		}
	}
	return false
}

// hashed derives a stand-in for a string holding a secret with scrypt, not
// a bare SHA-256: the digest is published in AMI tags and plan output, and
// a fast hash of a short password could be reversed by guessing. The salt
// is fixed so that every machine derives the same digest.
func hashed(s string) string {
	if v, ok := hashCache.Load(s); ok {
		return v.(string)
	}
	key, err := scrypt.Key([]byte(s), []byte("amibake-input-digest-v1"), 1<<14, 8, 1, 32)
	if err != nil {
		// Only invalid parameters fail; fall back to a salted SHA-256.
		sum := sha256.Sum256([]byte("amibake-sensitive\x00" + s))
		key = sum[:]
	}
	out := "sensitive:" + hex.EncodeToString(key)
	hashCache.Store(s, out)
	return out
}

var hashCache sync.Map

// dropKeys removes top-level options from generic settings.
func dropKeys(v any, keys []string) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for _, k := range keys {
		delete(m, k)
	}
	return m
}

func uniqueSorted(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
