// Package examples ships the example templates. The tutorial template is
// also embedded, for `ec2sim demo`, so that the demo and the file users
// copy are one and the same.
package examples

import _ "embed"

// TutorialJSON is tutorial/hello_ami.json: Packer's classic tutorial
// template, unchanged.
//
//go:embed tutorial/hello_ami.json
var TutorialJSON []byte
