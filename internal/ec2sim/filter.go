package ec2sim

import "strings"

// wildcard matches EC2 filter patterns: * is any run, ? any one
// character, and a backslash escapes the next character.
func wildcard(pattern, s string) bool {
	// Iterative matcher with one backtrack point: linear enough for
	// hostile patterns, unlike a naive recursive one.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch pattern[p] {
			case '*':
				starP, starI = p, i
				p++
				continue
			case '?':
				p++
				i++
				continue
			case '\\':
				if p+1 < len(pattern) && pattern[p+1] == s[i] {
					p += 2
					i++
					continue
				}
			default:
				if pattern[p] == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		p = starP + 1
		starI++
		i = starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// fieldFunc returns the values a resource has for a filter name.
type fieldFunc func(name string) []string

// checkFilters rejects filter names a resource type does not know.
func checkFilters(filters []Filter, known ...string) error {
	for _, f := range filters {
		if strings.HasPrefix(f.Name, "tag:") || f.Name == "tag-key" || f.Name == "tag-value" {
			continue
		}
		ok := false
		for _, k := range known {
			if f.Name == k {
				ok = true
				break
			}
		}
		if !ok {
			return apiErr("InvalidParameterValue", "The filter '%s' is invalid", f.Name)
		}
	}
	return nil
}

// matches applies filters (ANDed; a filter's values ORed) to a resource.
func matches(filters []Filter, tags []Tag, field fieldFunc) bool {
	for _, f := range filters {
		var have []string
		switch {
		case strings.HasPrefix(f.Name, "tag:"):
			k := f.Name[4:]
			for _, t := range tags {
				if t.Key == k {
					have = append(have, t.Value)
				}
			}
		case f.Name == "tag-key":
			for _, t := range tags {
				have = append(have, t.Key)
			}
		case f.Name == "tag-value":
			for _, t := range tags {
				have = append(have, t.Value)
			}
		default:
			have = field(f.Name)
		}
		if !anyMatch(f.Values, have) {
			return false
		}
	}
	return true
}

func anyMatch(patterns, have []string) bool {
	for _, p := range patterns {
		for _, h := range have {
			if wildcard(p, h) {
				return true
			}
		}
	}
	return false
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
