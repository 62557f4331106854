package bake

import (
	"github.com/amibake/amibake/postprocessor"
	"github.com/amibake/amibake/postprocessor/manifest"
)

// configurePostProcessor passes run-wide settings to post-processors that
// take them (the manifest's -force and run UUID).
func configurePostProcessor(pp postprocessor.PostProcessor, opts Options) {
	if m, ok := pp.(*manifest.PostProcessor); ok {
		m.Force = opts.Force
		if opts.RunUUID != "" {
			m.RunUUID = opts.RunUUID
		}
		if opts.Now != nil {
			m.Now = opts.Now
		}
	}
}
