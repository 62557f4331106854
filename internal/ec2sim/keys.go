package ec2sim

import (
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

func init() {
	actions["CreateKeyPair"] = createKeyPair
	actions["ImportKeyPair"] = importKeyPair
	actions["DescribeKeyPairs"] = describeKeyPairs
	actions["DeleteKeyPair"] = deleteKeyPair
}

var keyNameRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\x20-\x7e]+$`) }) // length checked apart, see amiNameRe

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

func (c *call) newKeyPair(name, keyType string, pub ssh.PublicKey, fp string) (*keyPair, error) {
	if name == "" {
		return nil, apiErr("MissingParameter", "The request must contain the parameter KeyName")
	}
	if len(name) > 255 || !keyNameRe().MatchString(name) {
		return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter keyName is invalid.", name)
	}
	if _, ok := c.r.keys[name]; ok {
		return nil, apiErr("InvalidKeyPair.Duplicate", "The keypair already exists")
	}
	specs, err := c.tagSpecs("key-pair")
	if err != nil {
		return nil, err
	}
	k := &keyPair{
		ID: c.s.newID("key-"), Name: name, Type: keyType, Fingerprint: fp, Created: c.now,
		PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + name,
	}
	c.r.keys[name] = k
	c.born(k.ID)
	c.r.setTags(k.ID, specs["key-pair"])
	return k, nil
}

func createKeyPair(c *call) error {
	keyType := c.q.Str("KeyType")
	if keyType == "" {
		keyType = "rsa"
	}
	if f := c.q.Str("KeyFormat"); f != "" && f != "pem" {
		return apiErr("InvalidParameterValue", "Key format %s is not supported by this simulator; use pem", f)
	}
	// Generate outside the lock: RSA generation takes a while.
	var material, fp string
	var pub ssh.PublicKey
	switch keyType {
	case "rsa":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return err
		}
		der := x509.MarshalPKCS1PrivateKey(key)
		material = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}))
		pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
		sum := sha1.Sum(pkcs8) // AWS fingerprints keys it creates by the SHA-1 of the PKCS#8 key
		fp = colonHex(sum[:])
		pub, _ = ssh.NewPublicKey(&key.PublicKey)
	case "ed25519":
		pk, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		block, err := ssh.MarshalPrivateKey(sk, "")
		if err != nil {
			return err
		}
		material = string(pem.EncodeToMemory(block))
		pub, _ = ssh.NewPublicKey(pk)
		fp = strings.TrimPrefix(ssh.FingerprintSHA256(pub), "SHA256:") + "="
	default:
		return apiErr("InvalidParameterValue", "Value (%s) for parameter keyType is invalid. Valid values are rsa and ed25519.", keyType)
	}
	defer c.lock()()
	k, err := c.newKeyPair(c.q.Str("KeyName"), keyType, pub, fp)
	if err != nil {
		return err
	}
	x := &c.x
	x.leaf("keyName", k.Name)
	x.leaf("keyFingerprint", k.Fingerprint)
	x.leaf("keyMaterial", material)
	x.leaf("keyPairId", k.ID)
	if tags := c.r.tags[k.ID]; len(tags) > 0 {
		x.tags(tags)
	}
	return nil
}

func importKeyPair(c *call) error {
	defer c.lock()()
	raw := c.q.Str("PublicKeyMaterial")
	if raw == "" {
		return apiErr("MissingParameter", "The request must contain the parameter PublicKeyMaterial")
	}
	material, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		material = []byte(raw)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(material)
	if err != nil {
		return apiErr("InvalidKey.Format", "Key is not in valid OpenSSH public key format")
	}
	var keyType, fp string
	switch pub.Type() {
	case ssh.KeyAlgoRSA:
		keyType = "rsa"
		if ck, ok := pub.(ssh.CryptoPublicKey); ok {
			der, _ := x509.MarshalPKIXPublicKey(ck.CryptoPublicKey())
			sum := md5.Sum(der)
			fp = colonHex(sum[:])
		}
	case ssh.KeyAlgoED25519:
		keyType = "ed25519"
		fp = strings.TrimPrefix(ssh.FingerprintSHA256(pub), "SHA256:") + "="
	default:
		return apiErr("InvalidKey.Format", "Key type %s is not supported: use rsa or ed25519", pub.Type())
	}
	k, err := c.newKeyPair(c.q.Str("KeyName"), keyType, pub, fp)
	if err != nil {
		return err
	}
	c.x.leaf("keyFingerprint", k.Fingerprint)
	c.x.leaf("keyName", k.Name)
	c.x.leaf("keyPairId", k.ID)
	if tags := c.r.tags[k.ID]; len(tags) > 0 {
		c.x.tags(tags)
	}
	return nil
}

func describeKeyPairs(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "key-pair-id", "key-name", "fingerprint", "key-type"); err != nil {
		return err
	}
	var keys []*keyPair
	names, ids := q.List("KeyName"), q.List("KeyPairId")
	for _, n := range names {
		k := c.r.keys[n]
		if k == nil || !c.visible(k.ID) {
			return apiErr("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", n)
		}
		keys = append(keys, k)
	}
	for _, id := range ids {
		var found *keyPair
		for _, k := range c.r.keys {
			if k.ID == id && c.visible(k.ID) {
				found = k
			}
		}
		if found == nil {
			return apiErr("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", id)
		}
		keys = append(keys, found)
	}
	if len(names)+len(ids) == 0 {
		for _, k := range c.r.keys {
			if c.visible(k.ID) {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	}
	x := &c.x
	withPub := q.Bool("IncludePublicKey")
	x.open("keySet")
	for _, k := range keys {
		if !matches(filters, c.r.tags[k.ID], func(n string) []string {
			return []string{map[string]string{"key-pair-id": k.ID, "key-name": k.Name, "fingerprint": k.Fingerprint, "key-type": k.Type}[n]}
		}) {
			continue
		}
		x.open("item")
		x.leaf("keyPairId", k.ID)
		x.leaf("keyName", k.Name)
		x.leaf("keyFingerprint", k.Fingerprint)
		x.leaf("keyType", k.Type)
		if tags := c.r.tags[k.ID]; len(tags) > 0 {
			x.tags(tags)
		}
		if withPub {
			x.leaf("publicKey", k.PublicKey)
		}
		x.time("createTime", k.Created)
		x.close("item")
	}
	x.close("keySet")
	return nil
}

func deleteKeyPair(c *call) error {
	defer c.lock()()
	name, id := c.q.Str("KeyName"), c.q.Str("KeyPairId")
	if name == "" && id == "" {
		return apiErr("MissingParameter", "The request must contain the parameter KeyName or KeyPairId")
	}
	for n, k := range c.r.keys {
		if (name != "" && n == name) || (id != "" && k.ID == id) {
			delete(c.r.keys, n)
			delete(c.r.tags, k.ID)
			c.x.boolean("return", true)
			c.x.leaf("keyPairId", k.ID)
			return nil
		}
	}
	if id != "" {
		return apiErr("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", id)
	}
	// AWS answers true for a missing key name.
	c.x.boolean("return", true)
	return nil
}
