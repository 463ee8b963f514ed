package mgmt

import (
	"fmt"
	"strings"
)

// splitWords splits a command line into words the way a POSIX shell quotes:
// blanks (spaces, tabs) separate words; inside single quotes everything is
// literal; double quotes group as well and take the backslash escapes \n,
// \r, \t, \\ and \" (a command line is one line, so this is how text with
// line ends gets in, e.g. --send "GET / HTTP/1.0\r\n\r\n"), keeping any
// other backslash as it is; outside quotes a backslash makes the next
// character literal. Quotes may join parts of one word: a"b c"d is "ab cd".
func splitWords(line string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool
	)
	for i := 0; i < len(line); i++ {
		switch c := line[i]; c {
		case ' ', '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote at column %d", i+1)
			}
			word.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case '"':
			start := i
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] != '\\' || i+1 == len(line) {
					word.WriteByte(line[i])
					continue
				}
				i++
				switch e := line[i]; e {
				case 'n':
					word.WriteByte('\n')
				case 'r':
					word.WriteByte('\r')
				case 't':
					word.WriteByte('\t')
				case '\\', '"':
					word.WriteByte(e)
				default:
					word.WriteByte('\\')
					word.WriteByte(e)
				}
			}
			if i == len(line) {
				return nil, fmt.Errorf("unterminated double quote at column %d", start+1)
			}
			inWord = true
		case '\\':
			if i+1 < len(line) {
				i++
			}
			word.WriteByte(line[i])
			inWord = true
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}
