package mgmt

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"", nil},
		{"  \t ", nil},
		{"show tcb", []string{"show", "tcb"}},
		{"  show\t tcb  42 ", []string{"show", "tcb", "42"}},
		{`tcp connect 198.18.0.1:7 --send "hello world"`, []string{"tcp", "connect", "198.18.0.1:7", "--send", "hello world"}},
		{`--send 'it''s'`, []string{"--send", "its"}},
		{`--send "it's"`, []string{"--send", "it's"}},
		{`--send 'say "hi"'`, []string{"--send", `say "hi"`}},
		{`--send "GET / HTTP/1.0\r\n\r\n"`, []string{"--send", "GET / HTTP/1.0\r\n\r\n"}},
		{`"a\tb\\c\"d"`, []string{"a\tb\\c\"d"}},
		{`"keep \x as is"`, []string{`keep \x as is`}},
		{`'no \n escapes here'`, []string{`no \n escapes here`}},
		{`a"b c"d`, []string{"ab cd"}},
		{`""`, []string{""}},
		{`x '' y`, []string{"x", "", "y"}},
		{`one\ word`, []string{"one word"}},
		{`trailing\`, []string{`trailing\`}},
		{"--send=\"a b\"", []string{"--send=a b"}},
	} {
		got, err := splitWords(tc.line)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
}

func TestSplitWordsUnterminated(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`tcp connect 198.18.0.1:7 --send "hello`, "unterminated double quote at column 33"},
		{`--send 'hello`, "unterminated single quote at column 8"},
		{`"ends in escaped quote\"`, "unterminated double quote at column 1"},
	} {
		_, err := splitWords(tc.line)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("splitWords(%q) error = %v, want %q", tc.line, err, tc.want)
		}
	}
}

func TestRunRefusesUnterminatedQuote(t *testing.T) {
	out, status := run(t, NewShell(sampleTCBs), `show tcb "42`)
	if status != StatusUsage || !strings.Contains(out, "error: unterminated double quote") {
		t.Fatalf("got %q, %d; want a usage error naming the quote", out, status)
	}
}

func TestQuotedArguments(t *testing.T) {
	// Quoting is a property of the line, not of one command.
	out, status := run(t, NewShell(sampleTCBs), `show "tcb" '42' --json`)
	if status != StatusOK || !strings.Contains(out, `"id": 42`) {
		t.Fatalf("got %q, %d", out, status)
	}
}
