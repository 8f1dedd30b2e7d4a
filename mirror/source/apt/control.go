package apt

import (
	"bytes"
	"fmt"
	"strings"
)

// Field is one field of a control-file paragraph. Value is the text after
// the colon with the first line trimmed; continuation lines follow after
// "\n" with their leading white space kept (" ." lines included).
type Field struct {
	Name  string
	Value string
}

// Paragraph is one stanza of a deb822 control file (Release, Packages), its
// fields in file order, and the exact bytes it was parsed from.
type Paragraph struct {
	Fields []Field
	// Raw is the paragraph as it was in the file, without the blank line
	// that ends it but with its last line's "\n".
	Raw []byte
}

// Get returns the value of the field name (case-insensitive, as in deb822)
// and whether it is present.
func (p *Paragraph) Get(name string) (string, bool) {
	for _, f := range p.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// Value returns the value of the field name, "" when absent.
func (p *Paragraph) Value(name string) string {
	v, _ := p.Get(name)
	return v
}

// ParseControl parses a deb822 control file: paragraphs separated by blank
// lines, "Name: value" fields, continuation lines starting with a space or a
// tab. It refuses duplicate fields, fields without a name, continuation
// lines without a field, NUL bytes and inputs over the limits (MaxParagraphs,
// MaxFields, MaxFieldSize). On error it returns no paragraphs.
func ParseControl(data []byte) ([]Paragraph, error) {
	var out []Paragraph
	var cur *Paragraph
	// The last field's continuation lines are contiguous in data: they
	// are joined once, when the field ends (no quadratic appends).
	contStart, contEnd := -1, -1
	flush := func() {
		if cur != nil && contStart >= 0 {
			f := &cur.Fields[len(cur.Fields)-1]
			f.Value += "\n" + string(data[contStart:contEnd])
		}
		contStart, contEnd = -1, -1
	}
	start := 0  // offset of the current paragraph's first line
	lineNo := 0 // for messages
	fail := func(format string, args ...any) ([]Paragraph, error) {
		return nil, fmt.Errorf("%w: line %d: %s", ErrControl, lineNo, fmt.Sprintf(format, args...))
	}
	if bytes.IndexByte(data, 0) >= 0 {
		lineNo = bytes.Count(data[:bytes.IndexByte(data, 0)], []byte("\n")) + 1
		return fail("NUL byte")
	}
	end := func(at int) {
		flush()
		if cur != nil {
			cur.Raw = data[start:at:at]
			out = append(out, *cur)
			cur = nil
		}
	}
	for off := 0; off < len(data); {
		lineNo++
		nl := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		line := data[off:]
		if nl >= 0 {
			line = data[off : off+nl]
			next = off + nl + 1
		}
		switch {
		case len(bytes.TrimLeft(line, " \t")) == 0:
			end(off)
		case line[0] == ' ' || line[0] == '\t':
			if cur == nil || len(cur.Fields) == 0 {
				return fail("continuation line outside a field")
			}
			f := &cur.Fields[len(cur.Fields)-1]
			if contStart < 0 {
				contStart = off
			}
			contEnd = off + len(line)
			if len(f.Value)+1+contEnd-contStart > MaxFieldSize {
				return fail("field %s is longer than %d bytes", f.Name, MaxFieldSize)
			}
		default:
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				return fail("want \"Field: value\"")
			}
			flush()
			name := string(line[:colon])
			if err := checkFieldName(name); err != nil {
				return fail("%v", err)
			}
			if cur == nil {
				if len(out) >= MaxParagraphs {
					return fail("more than %d paragraphs", MaxParagraphs)
				}
				cur = &Paragraph{}
				start = off
			}
			if len(cur.Fields) >= MaxFields {
				return fail("more than %d fields in one paragraph", MaxFields)
			}
			if _, dup := cur.Get(name); dup {
				return fail("duplicate field %s", name)
			}
			v := string(bytes.TrimSpace(line[colon+1:]))
			if len(v) > MaxFieldSize {
				return fail("field %s is longer than %d bytes", name, MaxFieldSize)
			}
			cur.Fields = append(cur.Fields, Field{Name: name, Value: v})
		}
		off = next
	}
	end(len(data))
	return out, nil
}

func checkFieldName(n string) error {
	if n[0] == '#' || n[0] == '-' {
		return fmt.Errorf("field name %q starts with %q", n, n[0])
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("field name %q has a character outside 0x21-0x7e", n)
		}
	}
	return nil
}

// Marshal writes the paragraph's fields in deb822 form (ending with "\n",
// without the blank separator line). ParseControl(Marshal(p)) gives back
// p's fields.
func (p *Paragraph) Marshal() []byte {
	var b bytes.Buffer
	for _, f := range p.Fields {
		b.WriteString(f.Name)
		b.WriteByte(':')
		first, rest, multi := strings.Cut(f.Value, "\n")
		if first != "" {
			b.WriteByte(' ')
			b.WriteString(first)
		}
		if multi {
			b.WriteByte('\n')
			b.WriteString(rest)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// MarshalControl writes paragraphs separated by blank lines.
func MarshalControl(ps []Paragraph) []byte {
	var b bytes.Buffer
	for i := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.Write(ps[i].Marshal())
	}
	return b.Bytes()
}
