variable "region" {
  default = "us-east-1"
}

source "amazon-ebs" "x" {
  region   = var.regoin
  ami_name = "demo"
}

build {
  sources = ["source.amazon-ebs.x"]
}
