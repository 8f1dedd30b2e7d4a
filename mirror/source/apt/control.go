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
	lineNo := 0 // for messages
	fail := func(format string, args ...any) ([]Paragraph, error) {
		return nil, fmt.Errorf("%w: line %d: %s", ErrControl, lineNo, fmt.Sprintf(format, args...))
	}
	if z := bytes.IndexByte(data, 0); z >= 0 {
		lineNo = bytes.Count(data[:z], []byte("\n")) + 1
		return fail("NUL byte")
	}
	// One copy of the input: names and values are substrings of it, and
	// the fields of every paragraph share one backing array, so a large
	// Packages index costs a few allocations per paragraph, not per field.
	text := string(data)
	// Sized once: at most one field per line, one paragraph per blank line.
	lines := bytes.Count(data, []byte("\n")) + 1
	all := make([]Field, 0, min(lines, MaxParagraphs*4))
	out := make([]Paragraph, 0, min(bytes.Count(data, []byte("\n\n"))+1, MaxParagraphs))
	inPar := false
	start, first := 0, 0 // the paragraph's offset and first field in all
	// The last field: its trimmed first-line value text[vStart:vEnd], the
	// end of its first line, and its continuation lines
	// text[contStart:contEnd] (contiguous), joined when the field ends.
	vStart, vEnd, lineEnd, contStart, contEnd := 0, 0, 0, -1, -1
	flush := func() {
		if contStart >= 0 {
			f := &all[len(all)-1]
			if vEnd == lineEnd {
				f.Value = text[vStart:contEnd] // value, "\n", continuation lines
			} else {
				f.Value = text[vStart:vEnd] + "\n" + text[contStart:contEnd]
			}
		}
		contStart, contEnd = -1, -1
	}
	end := func(at int) {
		flush()
		if inPar {
			out = append(out, Paragraph{Fields: all[first:len(all):len(all)], Raw: data[start:at:at]})
			inPar = false
		}
	}
	for off := 0; off < len(text); {
		lineNo++
		next := len(text)
		line := text[off:]
		if nl := strings.IndexByte(line, '\n'); nl >= 0 {
			line = line[:nl]
			next = off + nl + 1
		}
		switch {
		case strings.TrimLeft(line, " \t") == "":
			end(off)
		case line[0] == ' ' || line[0] == '\t':
			if !inPar {
				return fail("continuation line outside a field")
			}
			if contStart < 0 {
				contStart = off
			}
			contEnd = off + len(line)
			if vEnd-vStart+1+contEnd-contStart > MaxFieldSize {
				return fail("field %s is longer than %d bytes", all[len(all)-1].Name, MaxFieldSize)
			}
		default:
			colon := strings.IndexByte(line, ':')
			if colon <= 0 {
				return fail("want \"Field: value\"")
			}
			flush()
			name := line[:colon]
			if err := checkFieldName(name); err != nil {
				return fail("%v", err)
			}
			if !inPar {
				if len(out) >= MaxParagraphs {
					return fail("more than %d paragraphs", MaxParagraphs)
				}
				inPar, start, first = true, off, len(all)
			}
			if len(all)-first >= MaxFields {
				return fail("more than %d fields in one paragraph", MaxFields)
			}
			for _, f := range all[first:] {
				if strings.EqualFold(f.Name, name) {
					return fail("duplicate field %s", name)
				}
			}
			rest := line[colon+1:]
			v := strings.TrimSpace(rest)
			lineEnd = off + len(line)
			if v == "" {
				vStart, vEnd = lineEnd, lineEnd
			} else {
				vStart = off + colon + 1 + strings.Index(rest, v)
				vEnd = vStart + len(v)
			}
			if len(v) > MaxFieldSize {
				return fail("field %s is longer than %d bytes", name, MaxFieldSize)
			}
			all = append(all, Field{Name: name, Value: v})
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
