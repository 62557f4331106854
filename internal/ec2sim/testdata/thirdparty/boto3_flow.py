"""A whole image flow with boto3 (Debian's python3-boto3) against the
simulator, botocore's waiters included. Usage: boto3_flow.py ENDPOINT REGION.
Prints one line per step; exits non-zero on the first failure."""
import sys

import boto3

endpoint, region = sys.argv[1], sys.argv[2]
ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=region,
                   aws_access_key_id="AKIASIMULATOR000001", aws_secret_access_key="simulator-secret")
# Poll every second rather than botocore's 15 s: the waiters' logic and
# acceptors are unchanged, only the test is quicker.
fast = {"Delay": 1, "MaxAttempts": 120}


def step(name, value=""):
    print(f"{name} {value}".strip(), flush=True)


images = ec2.describe_images(Owners=["099720109477"], Filters=[
    {"Name": "name", "Values": ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]},
    {"Name": "architecture", "Values": ["x86_64"]}])["Images"]
source = sorted(images, key=lambda i: i["CreationDate"])[-1]["ImageId"]
step("source", source)

zones = ec2.describe_availability_zones()["AvailabilityZones"]
subnets = ec2.describe_subnets(Filters=[{"Name": "availabilityZone", "Values": [zones[0]["ZoneName"]]}])["Subnets"]
assert subnets, "no subnet in " + zones[0]["ZoneName"]
step("subnet", subnets[0]["SubnetId"])

types = ec2.describe_instance_types(InstanceTypes=["t2.micro"])["InstanceTypes"]
assert types[0]["ProcessorInfo"]["SupportedArchitectures"] == ["i386", "x86_64"] or "x86_64" in types[0]["ProcessorInfo"]["SupportedArchitectures"]
step("hypervisor", types[0]["Hypervisor"])

sg = ec2.create_security_group(GroupName="boto3-flow", Description="boto3 flow")["GroupId"]
ec2.get_waiter("security_group_exists").wait(GroupIds=[sg], WaiterConfig=fast)
ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
    "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
    "IpRanges": [{"CidrIp": "127.0.0.1/32", "Description": "ssh from the test"}]}])
rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [sg]}])["SecurityGroupRules"]
ingress = [r for r in rules if not r["IsEgress"]]
assert ingress and ingress[0].get("Description") == "ssh from the test", rules
step("security-group", sg)

key = ec2.create_key_pair(KeyName="boto3-flow")
ec2.get_waiter("key_pair_exists").wait(KeyNames=["boto3-flow"], WaiterConfig=fast)
step("key-pair", key["KeyPairId"])

run = ec2.run_instances(ImageId=source, InstanceType="t2.micro", MinCount=1, MaxCount=1, KeyName="boto3-flow",
                        SecurityGroupIds=[sg], SubnetId=subnets[0]["SubnetId"],
                        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "boto3-flow"}]}])
iid = run["Instances"][0]["InstanceId"]
ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig=fast)
ec2.get_waiter("instance_status_ok").wait(InstanceIds=[iid], WaiterConfig=fast)
inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
assert inst["State"]["Name"] == "running", inst["State"]
step("instance", iid)

ec2.stop_instances(InstanceIds=[iid])
ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig=fast)
step("stopped", iid)

ami = ec2.create_image(InstanceId=iid, Name="boto3-flow-image", TagSpecifications=[
    {"ResourceType": "image", "Tags": [{"Key": "Name", "Value": "boto3-flow"}]}])["ImageId"]
ec2.get_waiter("image_available").wait(ImageIds=[ami], WaiterConfig=fast)
image = ec2.describe_images(ImageIds=[ami])["Images"][0]
snap = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig=fast)
step("image", ami)

ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": "111122223333"}]})
perms = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"]
assert perms == [{"UserId": "111122223333"}], perms
step("shared", ami)

ec2.deregister_image(ImageId=ami)
ec2.delete_snapshot(SnapshotId=snap)
ec2.terminate_instances(InstanceIds=[iid])
ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig=fast)
ec2.delete_key_pair(KeyName="boto3-flow")
ec2.delete_security_group(GroupId=sg)
step("done")
