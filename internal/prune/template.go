package prune

import (
	"maps"
	"slices"
	"sort"

	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/reuse"
)

// ForBuild is what `amibake prune TEMPLATE` selects for one build: the
// AMIs whose name is the build's ami_name with its timestamp parts left
// out, carrying the build's tags (values stemmed the same way, so a tag
// that holds the build time still matches).
func ForBuild(amiName string, tags map[string]string) Selection {
	sel := Selection{Name: Stem(amiName)}
	if len(tags) > 0 {
		sel.Tags = map[string]string{}
		for k, v := range tags {
			sel.Tags[k] = Stem(v)
		}
	}
	return sel
}

// ProtectDigest keeps the release carrying digest: what the template would
// build now (a --reuse build reuses it, whatever its creation date).
func ProtectDigest(digest string) func(Image) string {
	return func(im Image) string {
		if digest != "" && im.Tags[reuse.TagKey] == digest {
			return "what the template builds now (input digest " + short(digest) + ")"
		}
		return ""
	}
}

// ProtectIDs keeps the release of each AMI in amis (region → id): a
// build's own artifact.
func ProtectIDs(amis map[string]string, why string) func(Image) string {
	return func(im Image) string {
		if amis[im.Region] == im.ID {
			return why
		}
		return ""
	}
}

// LedgerRegions are the regions where the local ledger's runs made AMIs:
// where copies of a team's builds live, when --region is not given.
func LedgerRegions(runs []*ledger.Run) []string {
	seen := map[string]bool{}
	for _, r := range runs {
		for _, res := range r.Resources {
			if res.Kind == ledger.KindImage && res.Region != "" {
				seen[res.Region] = true
			}
		}
	}
	out := slices.Collect(maps.Keys(seen))
	sort.Strings(out)
	return out
}

func short(d string) string {
	if len(d) > 16 {
		return d[:16]
	}
	return d
}
