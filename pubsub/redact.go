package pubsub

import (
	"net/url"
	"regexp"
	"strings"
)

// secretParams are query parameters whose values are secrets.
var secretParams = []string{"password", "pass", "token", "secret", "nkey", "sslpassword", "auth_token"}

// userinfoRE finds "user:secret@" in strings that do not parse as URLs.
var userinfoRE = regexp.MustCompile(`(//[^/@:\s]*):[^@/\s]*@`)

// RedactURL returns raw with its password and secret query parameters
// replaced by "xxxxx", for use in errors, logs and output. A string that
// does not parse as a URL is scrubbed of anything that looks like
// "user:password@".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return userinfoRE.ReplaceAllString(raw, "${1}:xxxxx@")
	}
	changed := false
	if u.User != nil {
		changed = true
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else if u.Scheme == "nats" || u.Scheme == "tls" {
			// nats://TOKEN@host: a lone user part is a token.
			u.User = url.User("xxxxx")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			for _, s := range secretParams {
				if strings.EqualFold(k, s) {
					q.Set(k, "xxxxx")
					changed = true
				}
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		// Re-serialising would alter harmless URLs ("mem://" -> "mem:").
		return raw
	}
	return u.String()
}
