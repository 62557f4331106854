variable "password" {
  type      = string
  default   = "hunter2-very-secret"
  sensitive = true
}

variable "name" {
  type    = string
  default = "web"
}

source "amazon-ebs" "web" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t3.micro"
  ssh_username  = "root"
  ami_name      = "${var.name}-${uuidv4()}"
  temporary_security_group_source_cidrs = ["10.1.0.0/16"]
}

source "amazon-ebs" "db" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t3.micro"
  ssh_username  = "root"
  ami_name      = "db-image"
}

build {
  sources = ["source.amazon-ebs.web", "source.amazon-ebs.db"]

  provisioner "shell" {
    inline = ["echo ${var.password} | chpasswd"]
  }
}
