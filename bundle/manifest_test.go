package bundle

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// validManifest is a full bundle manifest that passes Validate.
func validManifest() *Manifest {
	m := testManifest(3, testBlobs(4, 10, 20, 30))
	m.Format, m.OperatorKeyID = Format, "0123456789ABCDEF"
	m.ID = m.ComputeID()
	return m
}

func TestValidate(t *testing.T) {
	if err := validManifest().Validate(); err != nil {
		t.Fatalf("valid manifest: %v", err)
	}
	h := strings.Repeat("a", 64)
	cases := []struct {
		name string
		edit func(m *Manifest)
		want error
		fld  string
	}{
		{"unknown format", func(m *Manifest) { m.Format = "mirror-bundle/v2" }, ErrFormat, "format"},
		{"empty format", func(m *Manifest) { m.Format = "" }, ErrFormat, "format"},
		{"id not hex", func(m *Manifest) { m.ID = "XYZ" + m.ID[3:] }, ErrMalformed, "id"},
		{"id upper-case", func(m *Manifest) { m.ID = strings.ToUpper(m.ID) }, ErrMalformed, "id"},
		{"sequence 0", func(m *Manifest) { m.Sequence = 0 }, ErrMalformed, "sequence"},
		{"base not below sequence", func(m *Manifest) { m.BaseSequence = 3 }, ErrMalformed, "base_sequence"},
		{"no created", func(m *Manifest) { m.Created = time.Time{} }, ErrMalformed, "created"},
		{"expires before created", func(m *Manifest) { m.Expires = m.Created.Add(-time.Second) }, ErrMalformed, "expires"},
		{"expires equal created", func(m *Manifest) { m.Expires = m.Created }, ErrMalformed, "expires"},
		{"key id lower-case", func(m *Manifest) { m.OperatorKeyID = "0123456789abcdef" }, ErrMalformed, "operator_key_id"},
		{"tool version with escape", func(m *Manifest) { m.ToolVersion = "1\x1b[2J" }, ErrMalformed, "tool_version"},
		{"dot-dot path", func(m *Manifest) { m.Tree[0].Path = "tools/../../etc/passwd" }, ErrUnsafePath, "tree[0].path"},
		{"dot segment", func(m *Manifest) { m.Tree[0].Path = "tools/./x" }, ErrUnsafePath, "tree[0].path"},
		{"absolute path", func(m *Manifest) { m.Tree[0].Path = "/etc/passwd" }, ErrUnsafePath, "tree[0].path"},
		{"empty path", func(m *Manifest) { m.Tree[0].Path = "" }, ErrUnsafePath, "tree[0].path"},
		{"empty segment", func(m *Manifest) { m.Tree[0].Path = "tools//x" }, ErrUnsafePath, "tree[0].path"},
		{"trailing slash", func(m *Manifest) { m.Tree[0].Path = "tools/x/" }, ErrUnsafePath, "tree[0].path"},
		{"backslash", func(m *Manifest) { m.Tree[0].Path = `tools\x` }, ErrUnsafePath, "tree[0].path"},
		{"NUL", func(m *Manifest) { m.Tree[0].Path = "tools/x\x00.tar.gz" }, ErrUnsafePath, "tree[0].path"},
		{"newline", func(m *Manifest) { m.Tree[0].Path = "tools/x\n.tar.gz" }, ErrUnsafePath, "tree[0].path"},
		{"invalid UTF-8", func(m *Manifest) { m.Tree[0].Path = "tools/\xff" }, ErrUnsafePath, "tree[0].path"},
		{"long segment", func(m *Manifest) { m.Tree[0].Path = "tools/" + strings.Repeat("x", 256) }, ErrUnsafePath, "tree[0].path"},
		{"long path", func(m *Manifest) { m.Tree[0].Path = strings.Repeat("abcdefgh/", 500) + "x" }, ErrUnsafePath, "tree[0].path"},
		{"duplicate path", func(m *Manifest) { m.Tree[1].Path = m.Tree[0].Path }, ErrDuplicate, "tree[1].path"},
		{"case-insensitive duplicate", func(m *Manifest) { m.Tree[1].Path = strings.ToUpper(m.Tree[0].Path) }, ErrDuplicate, "tree[1].path"},
		{"case variant beyond lower case", func(m *Manifest) { m.Tree[0].Path, m.Tree[1].Path = "tools/\u03c3", "tools/\u03c2" }, ErrDuplicate, "tree[1].path"},
		{"file is also a directory", func(m *Manifest) { m.Tree[1].Path = m.Tree[0].Path + "/x" }, ErrDuplicate, "tree[1].path"},
		{"directory is also a file", func(m *Manifest) { m.Tree[1].Path = "TOOLS" }, ErrDuplicate, "tree[1].path"},
		{"tree hash upper-case", func(m *Manifest) { m.Tree[0].SHA256 = strings.ToUpper(m.Tree[0].SHA256) }, ErrMalformed, "tree[0].sha256"},
		{"tree hash short", func(m *Manifest) { m.Tree[0].SHA256 = m.Tree[0].SHA256[:63] }, ErrMalformed, "tree[0].sha256"},
		{"tree blob not carried", func(m *Manifest) { m.Tree[0].SHA256 = h }, ErrMalformed, "tree[0].sha256"},
		{"tree size differs from blob", func(m *Manifest) { m.Tree[0].Size++ }, ErrHashMismatch, "tree[0].size"},
		{"negative size", func(m *Manifest) { m.Tree[0].Size = -1 }, ErrLimit, "tree[0].size"},
		{"blob too large", func(m *Manifest) { m.Blobs[0].Size = DefaultLimits.MaxBlobSize + 1 }, ErrLimit, "blobs[0].size"},
		{"duplicate blob", func(m *Manifest) { m.Blobs = append(m.Blobs, m.Blobs[0]) }, ErrDuplicate, "blobs[3].sha256"},
		{"blob hash not hex", func(m *Manifest) { m.Blobs[0].SHA256 = strings.Repeat("g", 64) }, ErrMalformed, "blobs[0].sha256"},
		{"package of unknown source", func(m *Manifest) { m.Packages[0].Source = "other" }, ErrMalformed, "packages[0].source"},
		{"package path unsafe", func(m *Manifest) { m.Packages[0].Path = "../x" }, ErrUnsafePath, "packages[0].path"},
		{"package hash differs from tree", func(m *Manifest) { m.Packages[0].SHA256, m.Packages[0].Size = m.Blobs[1].SHA256, m.Blobs[1].Size }, ErrHashMismatch, "packages[0].sha256"},
		{"package blob not carried", func(m *Manifest) { m.Packages[0].SHA256 = h }, ErrMalformed, "packages[0].sha256"},
		{"signature path unsafe", func(m *Manifest) {
			m.Packages[0].Signatures = []PackageSignature{{Path: "/x.sig", SHA256: m.Blobs[0].SHA256, Scheme: "minisign"}}
		}, ErrUnsafePath, "packages[0].signatures[0].path"},
		{"signature blob not carried", func(m *Manifest) {
			m.Packages[0].Signatures = []PackageSignature{{Path: "x.sig", SHA256: h, Scheme: "minisign"}}
		}, ErrMalformed, "packages[0].signatures[0].sha256"},
		{"too many keys", func(m *Manifest) { m.Packages[0].Keys = make([]string, MaxListLen+1) }, ErrLimit, "packages[0]"},
		{"duplicate source", func(m *Manifest) { m.Sources = append(m.Sources, m.Sources[0]) }, ErrDuplicate, "sources[1].name"},
		{"source name with slash", func(m *Manifest) { m.Sources[0].Name = "a/b" }, ErrUnsafePath, "sources[0].name"},
		{"trust hash wrong", func(m *Manifest) { m.Trust.File += " " }, ErrHashMismatch, "trust.sha256"},
		{"rejected of unknown source", func(m *Manifest) { m.Rejected[0].Source = "x" }, ErrMalformed, "rejected[0].source"},
		{"rejected reason with escape", func(m *Manifest) { m.Rejected[0].Reason = "\x1b]0;pwned\x07" }, ErrMalformed, "rejected[0].reason"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := validManifest()
			c.edit(m)
			err := m.Validate()
			if !errors.Is(err, c.want) {
				t.Fatalf("Validate: %v, want %v", err, c.want)
			}
			var me *ManifestError
			if !errors.As(err, &me) || me.Field != c.fld {
				t.Fatalf("Validate: %v, want a *ManifestError for field %s", err, c.fld)
			}
		})
	}
}

func TestValidateLimits(t *testing.T) {
	m := validManifest()
	for _, c := range []struct {
		lim  Limits
		fld  string
		want error
	}{
		{Limits{MaxBlobs: 2, MaxTreeEntries: 10, MaxPackages: 10, MaxBlobSize: 100, MaxTotalSize: 1000, MaxMembers: 100}, "blobs", ErrLimit},
		{Limits{MaxBlobs: 10, MaxTreeEntries: 2, MaxPackages: 10, MaxBlobSize: 100, MaxTotalSize: 1000, MaxMembers: 100}, "tree", ErrLimit},
		{Limits{MaxBlobs: 10, MaxTreeEntries: 10, MaxPackages: 2, MaxBlobSize: 100, MaxTotalSize: 1000, MaxMembers: 100}, "packages", ErrLimit},
		{Limits{MaxBlobs: 10, MaxTreeEntries: 10, MaxPackages: 10, MaxBlobSize: 25, MaxTotalSize: 1000, MaxMembers: 100}, "blobs[2].size", ErrLimit},
		{Limits{MaxBlobs: 10, MaxTreeEntries: 10, MaxPackages: 10, MaxBlobSize: 100, MaxTotalSize: 59, MaxMembers: 100}, "blobs", ErrLimit},
		{Limits{MaxBlobs: 10, MaxTreeEntries: 10, MaxPackages: 10, MaxBlobSize: 100, MaxTotalSize: 1000, MaxMembers: 6}, "blobs", ErrLimit},
	} {
		err := m.ValidateLimits(c.lim)
		var me *ManifestError
		if !errors.Is(err, c.want) || !errors.As(err, &me) || me.Field != c.fld {
			t.Errorf("limits %+v: %v, want %v on %s", c.lim, err, c.want, c.fld)
		}
	}
	// Exactly at every limit passes.
	if err := m.ValidateLimits(Limits{MaxBlobs: 3, MaxTreeEntries: 3, MaxPackages: 3, MaxBlobSize: 30, MaxTotalSize: 60, MaxMembers: 7}); err != nil {
		t.Errorf("manifest exactly at the limits: %v", err)
	}
}

func TestValidateDelta(t *testing.T) {
	m := validManifest()
	m.BaseSequence = 2
	m.Blobs = m.Blobs[1:] // the first package's blob is in the base
	m.ID = m.ComputeID()
	if err := m.Validate(); err != nil {
		t.Fatalf("delta referring to its base: %v", err)
	}
	m.BaseSequence = 0
	if err := m.Validate(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("full bundle missing a blob: %v, want ErrMalformed", err)
	}
}
