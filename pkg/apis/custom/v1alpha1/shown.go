package v1alpha1

import (
	"fmt"
	"unicode/utf8"
)

// maxShown bounds how much of a value an error message repeats. Params are
// free text of any length (up to what the API server stores), and a message
// that echoes a megabyte-long value, more than once even, makes a status
// the API server refuses to store: the run would then never end.
const maxShown = 256

// shown is v as an error message may repeat it: whole when short, else
// its start and how long it was.
func shown(v string) string {
	if len(v) <= maxShown {
		return v
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes in all)", v[:cut], len(v))
}
