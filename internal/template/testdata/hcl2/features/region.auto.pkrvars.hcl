region = "auto-region"
