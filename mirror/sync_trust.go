package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"github.com/BurntSushi/toml"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/mirror-tool/mirror/verify"
)

// loadTrust loads the policy and the self-contained trust text recorded in
// the bundle: the [trust] table with every `file =` key inlined, so that
// the inside can re-check every decision with the manifest alone. The
// policy used is built from that very text.
func loadTrust(cfg *Config) (string, *verify.Policy, error) {
	// Loading the file first gives errors with line numbers.
	p1, _, err := verify.LoadTrustFile(cfg.File)
	if err != nil {
		return "", nil, err
	}
	tc := verify.Config{Rules: cfg.Trust.Rules}
	for _, k := range cfg.Trust.Keys {
		if k.File != "" {
			fp := k.File
			if !isAbs(fp) {
				fp = cfg.Dir + "/" + fp
			}
			f, err := os.Open(fp)
			if err != nil {
				return "", nil, fmt.Errorf("trust key %q: %w", k.Name, err)
			}
			b, err := io.ReadAll(io.LimitReader(f, verify.MaxKeyFileSize+1))
			f.Close()
			if err != nil || len(b) > verify.MaxKeyFileSize {
				return "", nil, fmt.Errorf("trust key %q: read %s: %v", k.Name, fp, err)
			}
			if err := inlineKey(&k, b); err != nil {
				return "", nil, fmt.Errorf("trust key %q: %s: %w", k.Name, fp, err)
			}
		}
		tc.Keys = append(tc.Keys, k)
	}
	var buf bytes.Buffer
	buf.WriteString("# The trust table this bundle's packages were checked against (key files inlined).\n")
	if err := toml.NewEncoder(&buf).Encode(struct {
		Trust verify.Config `toml:"trust"`
	}{tc}); err != nil {
		return "", nil, err
	}
	var back struct {
		Trust verify.Config `toml:"trust"`
	}
	if _, err := toml.Decode(buf.String(), &back); err != nil {
		return "", nil, fmt.Errorf("trust table: re-read the inlined form: %w", err)
	}
	p2, err := verify.NewPolicy(back.Trust, cfg.Dir)
	if err != nil {
		return "", nil, fmt.Errorf("trust table: inlined form: %w", err)
	}
	if !reflect.DeepEqual(p1.Keys(), p2.Keys()) {
		return "", nil, errors.New("trust table: the inlined form describes other keys than the file (a bug; please report it)")
	}
	return buf.String(), p2, nil
}

func isAbs(p string) bool { return len(p) > 0 && p[0] == '/' }

// inlineKey moves a key file's content into the matching field.
func inlineKey(k *verify.KeyConfig, b []byte) error {
	t := bytes.TrimSpace(b)
	k.File = ""
	switch {
	case bytes.HasPrefix(t, []byte("-----BEGIN PGP")):
		k.OpenPGP = string(t)
	case bytes.HasPrefix(t, []byte("untrusted comment:")), bytes.HasPrefix(t, []byte("RW")):
		k.Minisign = string(t)
	case bytes.HasPrefix(t, []byte("ssh-")), bytes.HasPrefix(t, []byte("ecdsa-sha2-")), bytes.HasPrefix(t, []byte("sk-")):
		k.SSH = string(t)
	case len(t) > 0 && t[0]&0x80 != 0:
		var a bytes.Buffer
		w, err := armor.Encode(&a, "PGP PUBLIC KEY BLOCK", nil)
		if err != nil {
			return err
		}
		w.Write(b)
		if err := w.Close(); err != nil {
			return err
		}
		k.OpenPGP = a.String()
	default:
		return errors.New("not an OpenPGP, minisign or SSH public key")
	}
	return nil
}
