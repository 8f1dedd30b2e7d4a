// Package mirror orchestrates mirror's jobs: the configuration (mirror.toml),
// `mirror sync` (sources → downloads → verification → bundle → state) and,
// in other files, import, serve and status.
package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"

	"github.com/mirror-tool/mirror/mirror/source/apt"
	"github.com/mirror-tool/mirror/mirror/source/field"
	"github.com/mirror-tool/mirror/mirror/source/files"
	"github.com/mirror-tool/mirror/verify"
)

// MaxConfigSize bounds mirror.toml.
const MaxConfigSize = 4 << 20

// MaxJobs bounds jobs / --jobs.
const MaxJobs = 256

// ErrConfig is matched by every configuration error.
var ErrConfig = errors.New("invalid configuration")

// ConfigError is an error in mirror.toml: the file, the line (0 when not
// known), the field and what is wrong or expected. It matches ErrConfig.
type ConfigError struct {
	File  string
	Line  int
	Field string
	Err   error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *ConfigError) Unwrap() []error { return []error{ErrConfig, e.Err} }

// Config is a loaded mirror.toml. Paths in it are absolute (relative ones
// were resolved against the file's folder).
type Config struct {
	// File is the absolute path of the configuration file; Dir its folder.
	File string
	Dir  string
	// Jobs is the number of parallel downloads.
	Jobs int
	// MaxFileSize bounds one downloaded package whose size the upstream
	// does not state in a signed index (0: MaxPackageSize).
	MaxFileSize Size
	Operator    OperatorConfig
	Output      OutputConfig
	// Trust is the [trust] table, decoded for verify.NewPolicy (relative
	// key files resolve against Dir).
	Trust   verify.Config
	Sources []SourceConfig
}

// OperatorConfig is [operator].
type OperatorConfig struct {
	Key            string `toml:"key"`
	PassphraseFile string `toml:"passphrase_file"`
}

// OutputConfig is [output].
type OutputConfig struct {
	Dir         string   `toml:"dir"`
	State       string   `toml:"state"`
	Expires     Duration `toml:"expires"`
	MaxPartSize Size     `toml:"max_part_size"`
}

// SourceConfig is one [[source]]: the fields every type shares, and the
// type's own table (exactly one of the pointers is set).
type SourceConfig struct {
	Name      string
	Type      string
	URL       string
	CAFile    string
	UserAgent string
	Timeout   time.Duration
	// NoPipelining: signatures are fetched one request at a time
	// (`pipelining = false`), not with HTTP/1.1 pipelining.
	NoPipelining bool
	// Files is set for type "files".
	Files *files.Config
	// Apt is set for type "apt".
	Apt *apt.Config
}

// sourceCommon are the fields of [[source]] that every type has.
type sourceCommon struct {
	Name       string   `toml:"name"`
	Type       string   `toml:"type"`
	URL        string   `toml:"url"`
	CAFile     string   `toml:"ca_file"`
	UserAgent  string   `toml:"user_agent"`
	Timeout    Duration `toml:"timeout"`
	Pipelining *bool    `toml:"pipelining"`
}

// Defaults.
const (
	DefaultOutputDir = "bundles"
	DefaultStateDir  = "state"
	DefaultExpires   = 30 * 24 * time.Hour
	MinExpires       = time.Hour // the shortest output.expires taken
)

// DefaultJobs is the default number of parallel downloads: min(8,
// 4*GOMAXPROCS).
func DefaultJobs() int { return min(8, 4*runtime.GOMAXPROCS(0)) }

// plannedTypes are source types that DESIGN.md names but this build does not
// implement yet.
var plannedTypes = map[string]bool{}

var sourceName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// LoadConfig reads and checks mirror.toml.
func LoadConfig(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &ConfigError{File: path, Err: err}
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, &ConfigError{File: path, Err: fmt.Errorf("%w; pass the configuration with --config", err)}
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, &ConfigError{File: path, Err: err}
	}
	if len(raw) > MaxConfigSize {
		return nil, &ConfigError{File: path, Err: fmt.Errorf("larger than %d bytes", MaxConfigSize)}
	}
	return ParseConfig(abs, raw)
}

// ParseConfig checks the configuration text raw, read from the file at the
// absolute path file (used for messages and to resolve relative paths).
func ParseConfig(file string, raw []byte) (*Config, error) {
	var doc struct {
		Jobs        *int             `toml:"jobs"`
		MaxFileSize Size             `toml:"max_file_size"`
		Operator    OperatorConfig   `toml:"operator"`
		Output      OutputConfig     `toml:"output"`
		Trust       verify.Config    `toml:"trust"`
		Sources     []toml.Primitive `toml:"source"`
	}
	cerr := func(line int, field string, format string, args ...any) error {
		return &ConfigError{File: file, Line: line, Field: field, Err: fmt.Errorf(format, args...)}
	}
	md, err := toml.NewDecoder(bytes.NewReader(raw)).Decode(&doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, cerr(pe.Position.Line, pe.LastKey, "%s", pe.Message)
		}
		if te, ok := typeError(err); ok {
			return nil, cerr(te.line, te.key, "%s", te.msg)
		}
		return nil, cerr(lineInMessage(err), "", "%v", err)
	}
	cfg := &Config{File: file, Dir: filepath.Dir(file), Operator: doc.Operator, Output: doc.Output, Trust: doc.Trust}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(cfg.Dir, p)
	}

	cfg.Jobs = DefaultJobs()
	if doc.Jobs != nil {
		if *doc.Jobs < 1 || *doc.Jobs > MaxJobs {
			return nil, cerr(lineOfKey(raw, "", 0, "jobs"), "jobs", "%d is out of range; want 1 to %d parallel downloads", *doc.Jobs, MaxJobs)
		}
		cfg.Jobs = *doc.Jobs
	}
	if doc.MaxFileSize < 0 || int64(doc.MaxFileSize) > MaxPackageSize {
		return nil, cerr(lineOfKey(raw, "", 0, "max_file_size"), "max_file_size", "must be positive and at most %d bytes (a bundle's blob limit), e.g. \"8GiB\"", MaxPackageSize)
	}
	cfg.MaxFileSize = doc.MaxFileSize
	if cfg.Operator.Key == "" {
		return nil, cerr(lineOfHeader(raw, "operator", 0), "operator.key", "missing; set it to the secret key written by `mirror keygen --out DIR` (DIR/operator.key)")
	}
	// TOML is not a shell: "~/x" would be a folder named "~".
	home := func(p, table string, item int, field, full string) error {
		if !strings.HasPrefix(p, "~") {
			return nil
		}
		return cerr(lineOfKey(raw, table, item, field), full, "%q starts with \"~\", which is not expanded here (TOML is not a shell): write the full path, e.g. \"/home/USER%s\"", p, strings.TrimPrefix(p, "~"))
	}
	for _, f := range []struct{ p, table, field string }{
		{cfg.Operator.Key, "operator", "key"}, {cfg.Operator.PassphraseFile, "operator", "passphrase_file"},
		{cfg.Output.Dir, "output", "dir"}, {cfg.Output.State, "output", "state"},
	} {
		if err := home(f.p, f.table, 0, f.field, f.table+"."+f.field); err != nil {
			return nil, err
		}
	}
	cfg.Operator.Key = abs(cfg.Operator.Key)
	cfg.Operator.PassphraseFile = abs(cfg.Operator.PassphraseFile)
	if cfg.Output.Dir == "" {
		cfg.Output.Dir = DefaultOutputDir
	}
	if cfg.Output.State == "" {
		cfg.Output.State = DefaultStateDir
	}
	cfg.Output.Dir, cfg.Output.State = abs(cfg.Output.Dir), abs(cfg.Output.State)
	if !md.IsDefined("output", "expires") {
		cfg.Output.Expires = Duration(DefaultExpires)
	} else if line := lineOfKey(raw, "output", 0, "expires"); cfg.Output.Expires < Duration(MinExpires) {
		// 0 used to mean the default, and "1ns" made a bundle expired
		// before it reached the medium, its sequence used up.
		return nil, cerr(line, "output.expires", "%v is too short: a bundle must outlive its trip to the inside; at least %v, e.g. \"720h\" (the default)", time.Duration(cfg.Output.Expires), MinExpires)
	}
	if cfg.Output.MaxPartSize < 0 {
		return nil, cerr(lineOfKey(raw, "output", 0, "max_part_size"), "output.max_part_size", "must be positive, e.g. \"4GiB\"")
	}

	// Decode every [[source]] first, so that unknown fields anywhere (the
	// trust table included) are reported before anything else.
	type decoded struct {
		common sourceCommon
		files  *files.Config
		apt    *apt.Config
	}
	var srcs []decoded
	for i, p := range doc.Sources {
		var d decoded
		if err := md.PrimitiveDecode(p, &d.common); err != nil {
			return nil, decodeError(file, raw, i+1, err)
		}
		if d.common.Type == files.Type {
			d.files = new(files.Config)
			if err := md.PrimitiveDecode(p, d.files); err != nil {
				return nil, decodeError(file, raw, i+1, err)
			}
		}
		if d.common.Type == apt.Type {
			d.apt = new(apt.Config)
			if err := md.PrimitiveDecode(p, d.apt); err != nil {
				return nil, decodeError(file, raw, i+1, err)
			}
		}
		srcs = append(srcs, d)
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		parent := strings.Join(k[:len(k)-1], ".")
		field := k[len(k)-1]
		// A misspelt field of an unknown source type is better reported as
		// the type's problem.
		if parent != "source" || allKnownTypes(srcs, func(d decoded) string { return d.common.Type }) {
			return nil, cerr(lineOfUnknown(raw, parent, field), k.String(), "unknown field %q; %s", field, expected(parent))
		}
	}

	names := map[string]bool{}
	for i, d := range srcs {
		item := i + 1
		c := d.common
		label := fmt.Sprintf("source #%d", item)
		if c.Name != "" {
			label = fmt.Sprintf("source %q", c.Name)
		}
		at := func(field string) int { return lineOfKey(raw, "source", item, field) }
		// sourceError points a source type's Validate error at the line of
		// the field it names (field.Error), else at the table's header.
		sourceError := func(err error) error {
			var fe *field.Error
			if errors.As(err, &fe) && fe.Field != "" {
				line := at(fe.Field)
				if line == 0 {
					line = lineOfHeader(raw, "source", item)
				}
				return cerr(line, label+": "+fe.Field, "%s", fe.Msg)
			}
			return cerr(lineOfHeader(raw, "source", item), label, "%v", err)
		}
		if !sourceName.MatchString(c.Name) {
			return nil, cerr(at("name"), label+": name", "%q: want 1 to 64 of a-z, 0-9, '.', '_', '-' (it is the top folder of the source in the mirror and the prefix of its package names)", c.Name)
		}
		if names[c.Name] {
			return nil, cerr(at("name"), label+": name", "duplicate source name")
		}
		names[c.Name] = true
		sc := SourceConfig{Name: c.Name, Type: c.Type, URL: c.URL, CAFile: abs(c.CAFile), UserAgent: c.UserAgent, Timeout: time.Duration(c.Timeout),
			NoPipelining: c.Pipelining != nil && !*c.Pipelining}
		if err := home(c.CAFile, "source", item, "ca_file", label+": ca_file"); err != nil {
			return nil, err
		}
		if d.files != nil {
			if err := home(d.files.Listing, "source", item, "listing", label+": listing"); err != nil {
				return nil, err
			}
		}
		if c.Timeout < 0 {
			return nil, cerr(at("timeout"), label+": timeout", "must be positive, e.g. \"60s\"")
		}
		if c.Type == files.Type || c.Type == apt.Type {
			if err := checkURL(c.URL); err != nil {
				return nil, cerr(at("url"), label+": url", "%v", err)
			}
		}
		switch {
		case c.Type == files.Type:
			fc := d.files
			if fc.Listing != "" && !strings.Contains(fc.Listing, "://") {
				fc.Listing = abs(fc.Listing)
			}
			if err := fc.Validate(); err != nil {
				return nil, sourceError(err)
			}
			sc.Files = fc
		case c.Type == apt.Type:
			if err := d.apt.Validate(); err != nil {
				return nil, sourceError(err)
			}
			sc.Apt = d.apt
		case c.Type == "":
			return nil, cerr(lineOfHeader(raw, "source", item), label+": type", "missing; want type = %q or %q", files.Type, apt.Type)
		case plannedTypes[c.Type]:
			return nil, cerr(at("type"), label+": type", "%q sources are not supported by this build yet; supported: %q, %q", c.Type, files.Type, apt.Type)
		default:
			return nil, cerr(at("type"), label+": type", "unknown source type %q; supported: %q, %q", c.Type, files.Type, apt.Type)
		}
		cfg.Sources = append(cfg.Sources, sc)
	}
	if len(cfg.Sources) == 0 {
		return nil, cerr(0, "source", "no [[source]] tables; add at least one (see docs/config.md)")
	}
	if len(cfg.Trust.Keys) == 0 {
		return nil, cerr(lineOfHeader(raw, "trust", 0), "trust.key", "no [[trust.key]] entries; an empty keyring would accept nothing (see docs/trust.md)")
	}

	return cfg, nil
}

// checkURL checks a source's url: an http:// or https:// URL with a host,
// and no space or control character (url.Parse takes a space in the path,
// which the upstream then answers with a 404 at fetch time).
func checkURL(s string) error {
	if s == "" {
		return errors.New("missing; want the http:// or https:// base URL of the upstream")
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("%q has a space or control character; write a space as %%20", s)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	return nil
}

func allKnownTypes[T any](items []T, typ func(T) string) bool {
	for _, it := range items {
		if t := typ(it); t != files.Type && t != apt.Type {
			return false
		}
	}
	return true
}

func expected(parent string) string {
	switch parent {
	case "":
		return "top-level fields are jobs, max_file_size, [operator], [output], [trust] and [[source]]"
	case "operator":
		return "[operator] has key and passphrase_file"
	case "output":
		return "[output] has dir, state, expires and max_part_size"
	case "source":
		return "a files [[source]] has name, type, url, files, listing, signatures, checksums, checksums_signature, ca_file, user_agent, timeout and pipelining; " +
			"an apt [[source]] has name, type, url, suites, components, architectures, packages, with_dependencies, source_packages, keep_upstream_signatures, ca_file, user_agent, timeout and pipelining"
	}
	if strings.HasPrefix(parent, "trust") {
		return "see docs/trust.md for the fields of [[trust.key]] and [[trust.rule]]"
	}
	return "see docs/config.md"
}

// decodeError turns a type error in a [[source]] into a ConfigError.
func decodeError(file string, raw []byte, item int, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &ConfigError{File: file, Line: pe.Position.Line, Field: pe.LastKey, Err: errors.New(pe.Message)}
	}
	if te, ok := typeError(err); ok {
		return &ConfigError{File: file, Line: te.line, Field: te.key, Err: errors.New(te.msg)}
	}
	line := lineInMessage(err)
	if line == 0 {
		line = lineOfHeader(raw, "source", item)
	}
	return &ConfigError{File: file, Line: line, Field: fmt.Sprintf("source #%d", item), Err: err}
}

// typeErrRe matches the toml decoder's message for a value of the wrong
// type, which it reports only as text.
var typeErrRe = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): incompatible types: TOML value has type (.+); destination has type (.+)$`)

type configTypeError struct {
	line int
	key  string
	msg  string
}

// typeError rewrites the decoder's "incompatible types: TOML value has
// type string; destination has type integer" as "want an integer, got a
// string", at the line and key it names.
func typeError(err error) (configTypeError, bool) {
	m := typeErrRe.FindStringSubmatch(err.Error())
	if m == nil {
		return configTypeError{}, false
	}
	line, _ := strconv.Atoi(m[1])
	return configTypeError{line: line, key: m[2], msg: fmt.Sprintf("want %s, got %s", tomlKind(m[4], true), tomlKind(m[3], false))}, true
}

// tomlKind names a Go type as the TOML value it stands for; wanted adds
// how to write a string.
func tomlKind(goType string, wanted bool) string {
	switch {
	case goType == "string" && wanted:
		return "a string (in quotes)"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint") || goType == "integer":
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]") || goType == "slice" || goType == "array":
		return "a list [...]"
	case strings.HasPrefix(goType, "map") || goType == "struct" || goType == "table":
		return "a table"
	case strings.Contains(goType, "Time") || strings.Contains(goType, "time"):
		return "a date"
	}
	return goType
}

var lineRe = regexp.MustCompile(`\bline (\d+)\b`)

// lineInMessage gets the line from a decoder type error, which the toml
// package reports only in its message.
func lineInMessage(err error) int {
	if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// headerRe matches a table header line and captures its name.
var headerRe = regexp.MustCompile(`^\s*\[\[?\s*([A-Za-z0-9_.\s"-]+?)\s*\]\]?\s*(#.*)?$`)

func tableOf(line string) (string, bool) {
	m := headerRe.FindStringSubmatch(line)
	if m == nil {
		return "", false
	}
	return strings.ReplaceAll(strings.ReplaceAll(m[1], " ", ""), `"`, ""), true
}

// lineOfHeader returns the line of the item-th header of table (item 0: the
// first), 0 when not found.
func lineOfHeader(raw []byte, table string, item int) int {
	seen := 0
	for i, l := range strings.Split(string(raw), "\n") {
		if t, ok := tableOf(l); ok && t == table {
			seen++
			if item == 0 || seen == item {
				return i + 1
			}
		}
	}
	return 0
}

// lineOfKey returns the line of key inside the item-th table (item 0: the
// first; table "": top level).
func lineOfKey(raw []byte, table string, item int, key string) int {
	kre := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	cur, seen := "", 0
	for i, l := range strings.Split(string(raw), "\n") {
		if t, ok := tableOf(l); ok {
			cur = t
			if t == table {
				seen++
			}
			continue
		}
		if cur == table && (item == 0 || seen == item) && kre.MatchString(l) {
			return i + 1
		}
	}
	return lineOfHeader(raw, table, item)
}

// lineOfUnknown finds an unknown key or table: a "key =" line under table
// parent, or a header naming parent.key.
func lineOfUnknown(raw []byte, parent, key string) int {
	full := key
	if parent != "" {
		full = parent + "." + key
	}
	if n := lineOfHeader(raw, full, 0); n > 0 {
		return n
	}
	return lineOfKey(raw, parent, 0, key)
}

// Duration is a TOML string like "720h" or "90m".
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		if _, nerr := strconv.ParseFloat(string(b), 64); nerr == nil {
			return fmt.Errorf("%s has no unit; write a duration in quotes, e.g. \"%sh\" (hours) or \"90m\"", b, b)
		}
		return fmt.Errorf("%q is not a duration; write e.g. \"720h\" or \"90m\"", b)
	}
	*d = Duration(v)
	return nil
}

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Size is a byte count written as an integer or a string with a unit:
// "4GiB", "700MB", "512KiB", "1000".
type Size int64

var sizeRe = regexp.MustCompile(`^\s*([0-9]+)\s*([KMGT]i?B|B)?\s*$`)

// ParseSize parses a size with an optional unit (B, KB, MB, GB, TB powers of
// 1000; KiB, MiB, GiB, TiB powers of 1024).
func ParseSize(s string) (Size, error) {
	m := sizeRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size; write e.g. \"4GiB\", \"700MB\" or a number of bytes", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m[2]]
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(n * mult), nil
}

// UnmarshalTOML accepts an integer (bytes) or a string with a unit.
func (s *Size) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return fmt.Errorf("size %d is negative", v)
		}
		*s = Size(v)
		return nil
	case string:
		n, err := ParseSize(v)
		if err != nil {
			return err
		}
		*s = n
		return nil
	}
	return fmt.Errorf("size: want a number of bytes or a string like \"4GiB\", got %T", v)
}
