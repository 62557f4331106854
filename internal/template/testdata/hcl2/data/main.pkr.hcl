data "amazon-ami" "ubuntu" {
  filters = {
    name = "ubuntu/images/*"
  }
  owners      = ["099720109477"]
  most_recent = true
}

locals {
  ami = data.amazon-ami.ubuntu.id
}

source "amazon-ebs" "x" {
  source_ami = local.ami
  ami_name   = "from-${data.amazon-ami.ubuntu.id}"
  volume     = 8
}

build {
  sources = ["source.amazon-ebs.x"]
}
