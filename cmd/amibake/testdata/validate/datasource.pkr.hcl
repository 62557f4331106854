variable "image_name" {
  type    = string
  default = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"
}

data "amazon-ami" "base" {
  region      = "us-east-1"
  filters     = { name = var.image_name }
  owners      = ["099720109477"]
  most_recent = true
}

source "amazon-ebs" "app" {
  region        = "us-east-1"
  source_ami    = data.amazon-ami.base.id
  instance_type = "t3.micro"
  ssh_username  = "ubuntu"
  ami_name      = "app"
  tags          = { Base = data.amazon-ami.base.name }
}

build {
  sources = ["source.amazon-ebs.app"]
}
