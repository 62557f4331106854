// Command vmsetup builds what the simulator's machines boot: the Debian
// base (mmdebstrap) and the offline apt mirror, once, into a root-owned
// cache (see package vm). make setup runs it; it prints what it does.
//
//	go run ./internal/ec2sim/vm/vmsetup [-add pkg,pkg] [-packages-file FILE]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/amibake/amibake/internal/ec2sim/vm"
)

func main() {
	cache := flag.String("cache", vm.CacheDir, "cache directory (root-owned)")
	add := flag.String("add", "", "extra packages for the offline apt mirror, comma- or space-separated")
	file := flag.String("packages-file", "", "file of extra mirror packages, one per line (# comments)")
	flag.Parse()
	extra := strings.FieldsFunc(*add, func(r rune) bool { return r == ',' || r == ' ' })
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmsetup: read packages file: %v\n", err)
			os.Exit(1)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if i := strings.IndexByte(l, '#'); i >= 0 {
				l = l[:i]
			}
			extra = append(extra, strings.Fields(l)...)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := vm.Setup(ctx, vm.SetupOptions{Cache: *cache, Extra: extra, Out: os.Stdout}); err != nil {
		fmt.Fprintf(os.Stderr, "vmsetup: %v\n", err)
		os.Exit(1)
	}
}
