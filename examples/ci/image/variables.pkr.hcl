# The CI example's image, laid out as Packer users lay theirs out: one
# directory, several files, loaded together (amibake validate/build DIR).

variable "region" {
  type        = string
  description = "Where to bake (the CI job sets PKR_VAR_region)."
}

variable "commit" {
  type        = string
  default     = "unknown"
  description = "The commit baked; recorded in the manifest, not in the image, so that --reuse can match across commits that change nothing in it."
}
