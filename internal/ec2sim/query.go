package ec2sim

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Query is one parsed EC2 Query API request: the flat key/value pairs an
// SDK serializes ("Filter.1.Value.2=x"), with helpers that rebuild the
// lists and structures the ec2query protocol flattens.
type Query struct {
	Action  string
	Version string
	Params  map[string]string
}

// maxParams bounds the work a hostile request can cause.
const maxParams = 10000

// ParseQuery parses a form-encoded request body (and the URL's query
// string, which AWS also accepts) into a Query. Errors are *APIError.
func ParseQuery(rawQuery string, body []byte) (*Query, error) {
	q := &Query{Params: map[string]string{}}
	for _, src := range []string{rawQuery, string(body)} {
		if src == "" {
			continue
		}
		vals, err := url.ParseQuery(src)
		if err != nil {
			return nil, apiErr("InvalidParameterValue", "malformed query string: %s", err)
		}
		for k, v := range vals {
			if len(q.Params) >= maxParams {
				return nil, apiErr("InvalidParameterValue", "too many parameters (more than %d)", maxParams)
			}
			if len(v) > 0 {
				q.Params[k] = v[len(v)-1]
			}
		}
	}
	q.Action = q.Params["Action"]
	q.Version = q.Params["Version"]
	if q.Action == "" {
		// MissingAction: "The request is missing an action or a required
		// parameter" (EC2 API reference, common client error codes).
		return nil, apiErr("MissingAction", "The request must contain the parameter Action")
	}
	return q, nil
}

// Str returns a scalar parameter, "" when absent.
func (q *Query) Str(key string) string { return q.Params[key] }

// Has reports whether a scalar parameter was sent.
func (q *Query) Has(key string) bool { _, ok := q.Params[key]; return ok }

// Bool parses a boolean parameter; absent means false.
func (q *Query) Bool(key string) bool { return strings.EqualFold(q.Params[key], "true") }

// Int parses an integer parameter; def when absent. A malformed value is an
// InvalidParameterValue error.
func (q *Query) Int(key string, def int) (int, error) {
	s, ok := q.Params[key]
	if !ok || s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, apiErr("InvalidParameterValue", "Invalid value '%s' for %s", s, key)
	}
	return n, nil
}

// Indices returns the sorted list indices N present under prefix ("prefix.N"
// or "prefix.N.rest").
func (q *Query) Indices(prefix string) []int {
	seen := map[int]bool{}
	p := prefix + "."
	for k := range q.Params {
		if !strings.HasPrefix(k, p) {
			continue
		}
		rest := k[len(p):]
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			rest = rest[:i]
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			continue
		}
		seen[n] = true
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// List returns the flattened list "prefix.1", "prefix.2", ... in index order.
func (q *Query) List(prefix string) []string {
	var out []string
	for _, n := range q.Indices(prefix) {
		if v, ok := q.Params[prefix+"."+strconv.Itoa(n)]; ok {
			out = append(out, v)
		}
	}
	return out
}

// Sub returns the list of structures "prefix.N.Field..." as sub-queries
// whose keys have "prefix.N." removed.
func (q *Query) Sub(prefix string) []*Query {
	var out []*Query
	for _, n := range q.Indices(prefix) {
		out = append(out, q.Struct(prefix+"."+strconv.Itoa(n)))
	}
	return out
}

// Struct returns the members of the structure "prefix.Field..." as a
// sub-query whose keys have "prefix." removed.
func (q *Query) Struct(prefix string) *Query {
	p := prefix + "."
	sub := &Query{Action: q.Action, Version: q.Version, Params: map[string]string{}}
	for k, v := range q.Params {
		if strings.HasPrefix(k, p) {
			sub.Params[k[len(p):]] = v
		}
	}
	return sub
}

// Filter is one DescribeX filter.
type Filter struct {
	Name   string
	Values []string
}

// Filters returns the request's "Filter.N.Name"/"Filter.N.Value.M" list.
func (q *Query) Filters() ([]Filter, error) {
	var out []Filter
	for _, s := range q.Sub("Filter") {
		name := s.Str("Name")
		if name == "" {
			return nil, apiErr("InvalidParameterValue", "The filter name must not be empty")
		}
		out = append(out, Filter{Name: name, Values: s.List("Value")})
	}
	return out, nil
}

// Tag is a resource tag.
type Tag struct{ Key, Value string }

// Tags returns "prefix.N.Key"/"prefix.N.Value" pairs.
func (q *Query) Tags(prefix string) ([]Tag, error) {
	var out []Tag
	for _, s := range q.Sub(prefix) {
		k := s.Str("Key")
		if k == "" {
			return nil, apiErr("InvalidParameterValue", "Tag keys must not be empty")
		}
		if len(k) > 128 || len(s.Str("Value")) > 256 || strings.HasPrefix(strings.ToLower(k), "aws:") {
			return nil, apiErr("InvalidParameterValue", "Invalid tag key or value: %q", k)
		}
		out = append(out, Tag{Key: k, Value: s.Str("Value")})
	}
	return out, nil
}

// TagSpecs returns the tags of "TagSpecification.N" grouped by ResourceType.
func (q *Query) TagSpecs() (map[string][]Tag, error) {
	out := map[string][]Tag{}
	for _, s := range q.Sub("TagSpecification") {
		rt := s.Str("ResourceType")
		if rt == "" {
			return nil, apiErr("InvalidParameterValue", "A resource type must be specified for each tag specification")
		}
		tags, err := s.Tags("Tag")
		if err != nil {
			return nil, err
		}
		out[rt] = append(out[rt], tags...)
	}
	return out, nil
}
