locals {
  name = "demo"
}

source "amazon-ebs" "x" {
  ami_name = local.nmae
}

build {
  sources = ["source.amazon-ebs.x"]
}
