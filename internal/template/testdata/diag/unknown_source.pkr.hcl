source "amazon-ebs" "ubuntu" {
  region = "us-east-1"
}

build {
  sources = ["source.amazon-ebs.ubunt"]
}
