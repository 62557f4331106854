locals {
  name_prefix = "${var.region}-base"
  stamp       = formatdate("YYYYMMDD", timestamp())
  later       = timeadd(timestamp(), "1h")
}

local "secret_url" {
  expression = "https://user:${var.password}@example.com"
  sensitive  = true
}

source "amazon-ebs" "ubuntu" {
  region        = var.region
  instance_type = "t3.micro"
  ami_name      = "${local.name_prefix}-${source.name}-${local.stamp}"
  root          = path.root
}

build {
  name        = "app"
  description = "application image"

  sources = ["source.amazon-ebs.ubuntu"]

  source "amazon-ebs.ubuntu" {
    name         = "second"
    ssh_username = "ubuntu"
  }

  provisioner "shell" {
    inline = ["echo ${source.name} ${source.type}"]
  }

  provisioner "shell" {
    only   = ["amazon-ebs.second"]
    inline = ["only second"]
  }

  provisioner "shell" {
    except          = ["amazon-ebs.second"]
    inline          = ["not second"]
    pause_before    = "5s"
    max_retries     = 3
    timeout         = "2m"
    override = {
      "amazon-ebs.ubuntu" = {
        inline = ["overridden"]
      }
    }
  }

  provisioner "shell" {
    inline = ["host ${build.Host}"]
  }

  error-cleanup-provisioner "shell-local" {
    inline = ["echo cleanup"]
  }

  post-processor "manifest" {
    output = "m.json"
  }

  post-processors {
    post-processor "shell-local" {
      inline = ["a"]
    }
    post-processor "manifest" {
      keep_input_artifact = true
    }
  }
}
