package ec2sim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

var (
	fuzzOnce sync.Once
	fuzzSrv  *Server
	fuzzN    int
)

// FuzzParseQuery feeds arbitrary form bodies to the parser, the structure
// helpers every action uses, and the whole API handler: bad input must
// come back as an error document, never a panic.
func FuzzParseQuery(f *testing.F) {
	seeds := []string{
		"Action=DescribeImages&Version=2016-11-15&Owner.1=099720109477&Filter.1.Name=name&Filter.1.Value.1=ubuntu%2Fimages%2F*noble*",
		"Action=RunInstances&ImageId=ami-0123456789abcdef0&MinCount=1&MaxCount=1&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=x",
		"Action=AuthorizeSecurityGroupIngress&GroupId=sg-0123456789abcdef0&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0%2F0",
		"Action=CreateImage&InstanceId=i-0123456789abcdef0&Name=x&BlockDeviceMapping.1.DeviceName=%2Fdev%2Fsda1&BlockDeviceMapping.1.Ebs.VolumeSize=9",
		"Action=DescribeInstances&MaxResults=5&NextToken=ZWMyc2ltOjU",
		"Action=Filter.0.Name&Filter.-1.Value.99999999999999999999=*&Filter.1.Value.1=\\",
		"Action=CreateFleet&Type=instant&LaunchTemplateConfigs.1.LaunchTemplateSpecification.LaunchTemplateName=x&TargetCapacitySpecification.TotalTargetCapacity=1",
		"%zz",
	}
	for _, s := range seeds {
		f.Add("", []byte(s))
	}
	f.Add("Action=DescribeRegions", []byte(nil))
	f.Fuzz(func(t *testing.T, rawQuery string, body []byte) {
		q, err := ParseQuery(rawQuery, body)
		if err != nil {
			return
		}
		if filters, err := q.Filters(); err == nil {
			for _, fl := range filters {
				for _, v := range fl.Values {
					wildcard(v, fl.Name)
				}
			}
		}
		_, _ = q.TagSpecs()
		_, _ = q.Tags("Tag")
		_, _ = parseBDMs(q)
		_, _ = readPermissions(q)
		_, _, _ = paginate(q, make([]int, 20), 5)
		mergeQuery(q, q)

		fuzzOnce.Do(func() {
			var err error
			fuzzSrv, err = Start(context.Background(), Options{NoSSH: true})
			if err != nil {
				panic(err)
			}
		})
		if fuzzN++; fuzzN%200 == 0 {
			fuzzSrv.Reset() // bound the state a long run accumulates
		}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		req.URL.RawQuery = rawQuery
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0")
		rec := httptest.NewRecorder()
		fuzzSrv.ServeHTTP(rec, req)
		if rec.Code >= 500 && !strings.Contains(rec.Body.String(), "<Code>") {
			t.Fatalf("status %d without an error document: %s", rec.Code, rec.Body.String())
		}
		if rec.Code == 500 && strings.Contains(rec.Body.String(), "<Code>InternalError</Code>") {
			t.Fatalf("handler failed internally on %q / %q: %s", rawQuery, body, rec.Body.String())
		}
	})
}
