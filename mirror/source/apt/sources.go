package apt

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// SourcePackage is one paragraph of a Sources index.
type SourcePackage struct {
	Name    string
	Version string
	// Directory holds the files, under the archive root (checked clean).
	Directory string
	// Files are the Checksums-Sha256 entries (.dsc, tarballs).
	Files     []SourceFile
	Paragraph Paragraph
}

// SourceFile is one file of a source package.
type SourceFile struct {
	Name   string
	SHA256 string
	Size   int64
}

// Path returns the file's path under the archive root.
func (s *SourcePackage) Path(f SourceFile) string { return s.Directory + "/" + f.Name }

// ParseSources parses a Sources index: each paragraph needs Package,
// Version, a clean Directory and a Checksums-Sha256 list of plain file
// names. On error nothing is returned.
func ParseSources(data []byte) ([]SourcePackage, error) {
	ps, err := ParseControl(data)
	if err != nil {
		return nil, err
	}
	out := make([]SourcePackage, 0, len(ps))
	for i, par := range ps {
		s := SourcePackage{Name: par.Value("Package"), Version: par.Value("Version"), Directory: par.Value("Directory"), Paragraph: par}
		if !isName(s.Name) || s.Version == "" || strings.ContainsAny(s.Version, " \t\n") {
			return nil, fmt.Errorf("paragraph %d: %w: missing or malformed Package or Version", i+1, ErrControl)
		}
		if _, err := CleanPath(s.Directory); err != nil {
			return nil, fmt.Errorf("source %s: Directory: %w", s.Name, err)
		}
		list, ok := par.Get("Checksums-Sha256")
		if !ok {
			return nil, fmt.Errorf("source %s: %w: no Checksums-Sha256", s.Name, ErrControl)
		}
		for _, line := range strings.Split(list, "\n") {
			fs := strings.Fields(line)
			if len(fs) == 0 {
				continue
			}
			if len(fs) != 3 || !isHex64(fs[0]) {
				return nil, fmt.Errorf("source %s: %w: Checksums-Sha256 line %q", s.Name, ErrControl, line)
			}
			size, err := strconv.ParseInt(fs[1], 10, 64)
			if err != nil || size < 0 {
				return nil, fmt.Errorf("source %s: %w: size in %q", s.Name, ErrControl, line)
			}
			if fs[2] != path.Base(fs[2]) || fs[2] == "." || fs[2] == ".." {
				return nil, fmt.Errorf("source %s: %w: file name %q", s.Name, ErrBadPath, fs[2])
			}
			if _, err := CleanPath(s.Directory + "/" + fs[2]); err != nil {
				return nil, fmt.Errorf("source %s: %w", s.Name, err)
			}
			s.Files = append(s.Files, SourceFile{Name: fs[2], SHA256: fs[0], Size: size})
		}
		if len(s.Files) == 0 {
			return nil, fmt.Errorf("source %s: %w: empty Checksums-Sha256", s.Name, ErrControl)
		}
		out = append(out, s)
	}
	return out, nil
}

// SourceOf returns the source package name and version a binary package
// was built from: its Source field ("name" or "name (version)"), else its
// own name and version.
func SourceOf(p *Package) (name, version string) {
	name, version = p.Name, p.Version
	src := strings.TrimSpace(p.Paragraph.Value("Source"))
	if src == "" {
		return name, version
	}
	n, rest, _ := strings.Cut(src, " ")
	name = n
	if rest = strings.TrimSpace(rest); strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") {
		version = strings.TrimSpace(rest[1 : len(rest)-1])
	}
	return name, version
}

// SourcesIndex picks the Sources index of component like Index does for
// Packages.
func (r *Release) SourcesIndex(component string) (string, FileSum, error) {
	dir := component + "/source/"
	for _, n := range indexOrder("Sources") {
		if s, ok := r.Files[dir+n]; ok {
			return dir + n, s, nil
		}
	}
	return "", FileSum{}, fmt.Errorf("%w: no %sSources(.gz|.xz)", ErrMissing, dir)
}
