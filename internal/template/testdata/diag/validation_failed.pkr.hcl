variable "instance_type" {
  type    = string
  default = "m5.huge"

  validation {
    condition     = can(regex("^t[23]\\.", var.instance_type))
    error_message = "The instance_type must be a t2 or t3 type."
  }
}
