package pubsub

import (
	"net/url"
	"regexp"
	"strings"
)

// secretParams are query parameters whose values are secrets.
var secretParams = []string{"password", "pass", "token", "secret", "nkey", "sslpassword", "auth_token"}

// schemeRE is what a URL scheme may look like (RFC 3986).
var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]{0,31}$`)

// userinfoRE finds "user:secret@" in strings that do not parse as URLs.
var userinfoRE = regexp.MustCompile(`(//[^/@:\s]*):[^@/\s]*@`)

// unparseable stands for a URL that cannot be shown: one that does not
// parse may hold a secret anywhere.
const unparseable = "(not a valid URL: not shown)"

// RedactURL returns raw with its password and secret query parameters
// replaced by "xxxxx", for use in errors, logs and output. A string that
// does not parse as a URL with a scheme and a host part, a keyword/value
// DSN ("host=... password=...") or an opaque URL ("postgres:PASS@host")
// is treated as secret as a whole: only its scheme is shown, when it is
// followed by "//" (in "user:secret@host" the "scheme" is a user name).
func RedactURL(raw string) string {
	if raw == "" {
		return raw
	}
	u, err := url.Parse(raw)
	if err == nil && u.Scheme == "" && !strings.ContainsAny(raw, "@:= \t\n") {
		return raw // no scheme, and nothing a secret could hide behind ("localhost/db")
	}
	if err != nil || u.Scheme == "" || u.Opaque != "" || strings.ContainsAny(raw, " \t\n") {
		if scheme, rest, ok := strings.Cut(raw, ":"); ok && schemeRE.MatchString(scheme) && strings.HasPrefix(rest, "//") {
			return scheme + "://" + unparseable
		}
		return unparseable
	}
	changed := false
	if u.User != nil {
		changed = true
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else if userIsToken(u) {
			u.User = url.User("xxxxx")
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			// Pairs it cannot split may hold secrets.
			u.RawQuery = ""
			return u.String() + "?" + unparseable
		}
		for k := range q {
			if isSecretParam(k) {
				q.Set(k, "xxxxx")
				changed = true
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

// RedactText replaces anything in free text that looks like
// "scheme://user:password@" with "scheme://user:xxxxx@".
func RedactText(s string) string {
	return userinfoRE.ReplaceAllString(s, "${1}:xxxxx@")
}

// RedactError returns err with every secret, and anything that looks like
// "scheme://user:password@", replaced by "xxxxx" in its message, for
// errors whose text a dependency formatted (a driver's connection errors
// can repeat parts of the connection string). The result keeps err's chain
// for errors.Is and errors.As. It returns err itself when there is nothing
// to scrub, and nil for nil.
func RedactError(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := RedactText(err.Error())
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

// redactedError is an error with a scrubbed message and the original
// chain.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// URLSecrets returns the secrets in raw (its password, a NATS token, the
// values of secret query parameters), so that a caller can scrub them from
// text a dependency formatted, which RedactURL never sees.
func URLSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		if m := userinfoRE.FindStringSubmatch(raw); m != nil {
			whole := m[0]
			return []string{whole[len(m[1])+1 : len(whole)-1]}
		}
		return nil
	}
	var out []string
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		} else if userIsToken(u) && u.User.Username() != "" {
			out = append(out, u.User.Username())
		}
	}
	for k, vs := range u.Query() {
		if isSecretParam(k) {
			out = append(out, vs...)
		}
	}
	return out
}

// userIsToken reports whether u's lone user part is a secret:
// nats://TOKEN@host.
func userIsToken(u *url.URL) bool { return u.Scheme == "nats" || u.Scheme == "tls" }

func isSecretParam(k string) bool {
	for _, s := range secretParams {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return false
}
