package operator

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPassphrase(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	envFile := file("env", "from env file\n")
	cfgFile := file("cfg", "from config file\r\n")
	spaces := file("spaces", "  keep spaces  \n")
	empty := file("empty", "\n")
	twoLines := file("two", "a\nb\n")
	big := file("big", strings.Repeat("x", MaxPassphraseSize+1))
	exact := file("exact", strings.Repeat("x", MaxPassphraseSize))

	tests := []struct {
		name    string
		env     map[string]string
		cfg     string
		want    string
		wantErr error
		src     string // what PassphraseSource names, for the hint
	}{
		{"env file first", map[string]string{EnvPassphraseFile: envFile, EnvPassphrase: "v"}, cfgFile, "from env file", nil, "MIRROR_PASSPHRASE_FILE (" + envFile + ")"},
		{"env value before config", map[string]string{EnvPassphrase: "value"}, cfgFile, "value", nil, "MIRROR_PASSPHRASE"},
		{"config file, CRLF stripped", nil, cfgFile, "from config file", nil, "operator.passphrase_file (" + cfgFile + ")"},
		{"spaces kept", nil, spaces, "  keep spaces  ", nil, "operator.passphrase_file (" + spaces + ")"},
		{"exactly the limit", nil, exact, strings.Repeat("x", MaxPassphraseSize), nil, "operator.passphrase_file (" + exact + ")"},
		{"none", nil, "", "", ErrNoPassphrase, ""},
		{"empty file", nil, empty, "", ErrEmptyPassphrase, "operator.passphrase_file (" + empty + ")"},
		{"missing file", map[string]string{EnvPassphraseFile: filepath.Join(dir, "nope")}, "", "", os.ErrNotExist, "MIRROR_PASSPHRASE_FILE (" + filepath.Join(dir, "nope") + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			if src := PassphraseSource(getenv, tt.cfg); src != tt.src {
				t.Errorf("PassphraseSource = %q, want %q", src, tt.src)
			}
			got, err := Passphrase(getenv, tt.cfg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || got != nil {
					t.Fatalf("Passphrase = %q, %v; want nil, %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, []byte(tt.want)) {
				t.Fatalf("Passphrase = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	for _, p := range []string{twoLines, big} {
		if got, err := ReadPassphraseFile(p); err == nil || got != nil || !strings.Contains(err.Error(), p) {
			t.Errorf("ReadPassphraseFile(%s) = %q, %v; want an error naming the file", p, got, err)
		}
	}
}
