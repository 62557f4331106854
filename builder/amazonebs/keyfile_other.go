//go:build !unix

package amazonebs

// O_EXCL alone refuses an existing name, links included.
const oNoFollow = 0
