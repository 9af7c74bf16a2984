package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// MaxBodyBytes is the largest request body a mutating endpoint reads (1
// MiB): selections are small. A larger body is refused with 413.
const MaxBodyBytes = 1 << 20

// maxBodyText names MaxBodyBytes in errors.
const maxBodyText = "1 MiB (1048576 bytes)"

// routes registers the handler's endpoints on a ServeMux and answers a
// known path asked with another method 405, with an Allow header naming
// the methods it serves. A ServeMux does that itself only when no pattern
// without a method matches the path, and the /api/ catch-all (a JSON 404
// for unknown API paths) matches every API path: so every path gets a
// method-less pattern of its own, more specific than the catch-all.
type routes struct {
	mux   *http.ServeMux
	paths []string
	allow map[string][]string
}

func newRoutes() *routes { return &routes{mux: http.NewServeMux(), allow: map[string][]string{}} }

// handle serves method on path (a ServeMux pattern without its method).
func (rs *routes) handle(method, path string, h http.Handler) {
	rs.mux.Handle(method+" "+path, h)
	if _, ok := rs.allow[path]; !ok {
		rs.paths = append(rs.paths, path)
	}
	rs.allow[path] = append(rs.allow[path], method)
	if method == http.MethodGet {
		// A GET pattern serves HEAD too.
		rs.allow[path] = append(rs.allow[path], http.MethodHead)
	}
}

// handler returns the mux with a 405 for every other method of every
// path handled, and notFound for what no pattern matches under prefix.
func (rs *routes) handler(prefix string, notFound http.HandlerFunc) http.Handler {
	for _, p := range rs.paths {
		allow := slices.Clone(rs.allow[p])
		rs.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": use "+strings.Join(allow, " or "))
		})
	}
	rs.mux.HandleFunc(prefix, notFound)
	return rs.mux
}

// decodeJSON decodes r's body into v. The body must be at most
// MaxBodyBytes (413 otherwise) and exactly one JSON document, white space
// around it aside: a second document or anything else after the first is
// refused (400), so that what runs is what the whole body says. An empty
// body leaves v as it is. want describes the expected document in errors.
// On failure it has answered, and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, want string) bool {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return true
	}
	if err == nil {
		// Token reads past white space to the next token: only the end of
		// the body may follow the document.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errTrailing
			if tooLarge := (*http.MaxBytesError)(nil); errors.As(terr, &tooLarge) {
				err = terr
			}
		}
	}
	if err == nil {
		return true
	}
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "body: larger than the limit of "+maxBodyText+" (want "+want+")")
		return false
	}
	writeError(w, http.StatusBadRequest, "body: "+err.Error()+" (want "+want+")")
	return false
}

var errTrailing = errors.New("more after the JSON document: send exactly one JSON document")

// knownParams refuses (400) a request whose query string does not parse
// (Go's url.Query drops a pair with a ';' or a bad escape), names a
// parameter next does not read, or names one twice: a parameter dropped
// or ignored would widen what the request selects, as ?queue=a;b listing
// every queue's dead letters.
func knownParams(next http.HandlerFunc, known ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeError(w, http.StatusBadRequest, "query: "+err.Error())
			return
		}
		for k, vs := range q {
			switch {
			case !slices.Contains(known, k):
				want := "none"
				if len(known) > 0 {
					want = strings.Join(known, ", ")
				}
				writeError(w, http.StatusBadRequest, "query: unknown parameter "+strconv.Quote(k)+" (known: "+want+")")
				return
			case len(vs) > 1:
				writeError(w, http.StatusBadRequest, "query: parameter "+strconv.Quote(k)+" given more than once")
				return
			}
		}
		next(w, r)
	}
}
