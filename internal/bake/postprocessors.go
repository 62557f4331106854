package bake

import (
	"github.com/amibake/amibake/internal/prune"
	"github.com/amibake/amibake/postprocessor"
	"github.com/amibake/amibake/postprocessor/amazonamimanagement"
	"github.com/amibake/amibake/postprocessor/manifest"
)

// configurePostProcessor passes run-wide settings to post-processors that
// take them (the manifest's -force and run UUID; amazon-ami-management's
// AWS state and prune journal folder, from the run's environment).
func configurePostProcessor(pp postprocessor.PostProcessor, opts Options) {
	if m, ok := pp.(*amazonamimanagement.PostProcessor); ok {
		m.Shared = opts.Shared
		if opts.Getenv != nil && m.JournalDir == "" {
			m.JournalDir = prune.Dir(opts.Getenv)
		}
	}
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
