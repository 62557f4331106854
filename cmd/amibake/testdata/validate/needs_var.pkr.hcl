variable "region" {
  type = string
}

variable "secret" {
  type      = string
  sensitive = true
}

variable "size" {
  type    = number
  default = 8
  validation {
    condition     = var.size >= 8
    error_message = "The size must be at least 8 GiB, got ${var.size}."
  }
}

source "amazon-ebs" "x" {
  region = var.region
}

build {
  sources = ["source.amazon-ebs.x"]
}
