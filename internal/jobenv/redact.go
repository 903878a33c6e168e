package jobenv

import "regexp"

// userinfo matches the user information of URLs in text ("nats://user:pass@",
// "tls://token@"): everything between "://" and the last "@" before the
// host, not crossing a slash, a comma (URLs lists), space or quote.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)([^/?#\s"'<>,]*)@`)

// Redacted is what [Redact] puts in place of a password or token.
const Redacted = "xxxxx"

// Redact returns s with the secrets of every URL in it replaced, in the
// manner of url.URL.Redacted: "nats://user:pass@host" becomes
// "nats://user:xxxxx@host". A user name without a password is a token to
// NATS, so "nats://token@host" becomes "nats://xxxxx@host". Use it on every
// message that may quote a URL given by a user (DECORUN_NATS_URL,
// decorun --nats-url), including error texts from packages that quote it.
func Redact(s string) string {
	return userinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfo.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		for i := 0; i < len(info); i++ {
			if info[i] == ':' {
				return scheme + info[:i] + ":" + Redacted + "@"
			}
		}
		return scheme + Redacted + "@"
	})
}

// RedactError is err with [Redact] applied to its message; it wraps err, so
// errors.Is and errors.As still see the cause. Nil stays nil.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	return &redacted{err}
}

type redacted struct{ err error }

func (r *redacted) Error() string { return Redact(r.err.Error()) }
func (r *redacted) Unwrap() error { return r.err }
