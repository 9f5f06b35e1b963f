# Workarounds for moto 5.2.5 bugs that the stockcast templates hit (the
# templates are right for AWS). Load before moto.server.main().
import moto.cloudformation.models as _cfm
import moto.kms.models as _kms

# 1. AWS::KMS::Key: CloudFormation tags are {Key, Value}; moto passes them to
#    its KMS tagger, which wants {TagKey, TagValue} -> KeyError 'TagKey', the
#    key is silently not created, and the first GetAtt on it fails the stack.
_orig_key_cfn = _kms.Key.create_from_cloudformation_json.__func__
def _key_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    props = cloudformation_json["Properties"]
    props["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props.get("Tags", [])]
    return _orig_key_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
_kms.Key.create_from_cloudformation_json = classmethod(_key_cfn)

# 2. A CREATE change set makes its stack without the region's exports, so
#    every Fn::ImportValue fails at execution ("No export named ...").
_orig_ccs = _cfm.CloudFormationBackend.create_change_set
def _create_change_set(self, stack_name, change_set_name, template, parameters, description, change_set_type, *args, **kwargs):
    out = _orig_ccs(self, stack_name, change_set_name, template, parameters, description, change_set_type, *args, **kwargs)
    if change_set_type == "CREATE":
        stack = self.stacks[out[1]]
        stack.cross_stack_resources = self.exports
        stack.resource_map.cross_stack_resources = self.exports
    return out
_cfm.CloudFormationBackend.create_change_set = _create_change_set

# 3. Executing a change set neither re-reads the template's Outputs nor
#    registers its exports (CREATE: no outputs at all), nor records the
#    new parameters.
_orig_ecs = _cfm.CloudFormationBackend.execute_change_set
def _execute_change_set(self, change_set_name, stack_name=None):
    _orig_ecs(self, change_set_name, stack_name)
    # moto looks a change set up by ARN, else by name alone (the last one
    # created with that name, in any stack): do the same.
    change_set = self.describe_change_set(change_set_name)
    stack = self.stacks[change_set.stack_id]
    stack._parse_template()
    stack.description = stack.template_dict.get("Description")
    stack.parameters = change_set.parameters
    stack.output_map = stack._create_output_map()
    for name in [n for n, e in self.exports.items() if e.exporting_stack_id == stack.stack_id]:
        del self.exports[name]
    self._validate_export_uniqueness(stack)
    for export in stack.exports:
        self.exports[export.name] = export
_cfm.CloudFormationBackend.execute_change_set = _execute_change_set

# 4. Executing a change set (ResourceMap.update) creates the added resources
#    in template order, ignoring DependsOn (create_stack honours it): e.g. an
#    ApiGateway::Deployment before its methods -> "The REST API doesn't
#    contain any methods".
import moto.cloudformation.parsing as _cfp
_orig_diff = _cfp.ResourceMap.build_resource_diff
def _build_resource_diff(self, other_template, parameters=None):
    diff = _orig_diff(self, other_template, parameters)
    resources = other_template["Resources"]
    ordered, seen = [], set()
    def visit(name):
        if name in seen or name not in resources:
            return
        seen.add(name)
        deps = resources[name].get("DependsOn", [])
        for dep in [deps] if isinstance(deps, str) else deps:
            visit(dep)
        ordered.append(name)
    for name in resources:
        visit(name)
    diff["Add"] = [n for n in ordered if n in set(diff["Add"])]
    return diff
_cfp.ResourceMap.build_resource_diff = _build_resource_diff

# 5. Deleting a stack does not delete AWS::EC2::RouteTable, Route,
#    SubnetRouteTableAssociation, InternetGateway or VPCGatewayAttachment
#    (no delete in moto's CloudFormation models), so the VPC's deletion
#    fails: "DependencyViolation: The vpc ... has dependencies".
from moto.ec2.models import ec2_backends as _ec2_backends
from moto.ec2.models.route_tables import RouteTable as _RouteTable, Route as _Route
from moto.ec2.models.subnets import SubnetRouteTableAssociation as _Assoc
from moto.ec2.models.internet_gateways import InternetGateway as _Igw
from moto.ec2.models.vpn_gateway import VPCGatewayAttachment as _Attachment

def _rt_delete(self, account_id, region_name):
    _ec2_backends[account_id][region_name].delete_route_table(self.id)
def _route_delete(self, account_id, region_name):
    backend = _ec2_backends[account_id][region_name]
    if self.route_table.id in backend.route_tables:
        backend.delete_route(self.route_table.id, self.destination_cidr_block)
def _assoc_delete(self, account_id, region_name):
    table = _ec2_backends[account_id][region_name].route_tables.get(self.route_table_id)
    if table is None:
        return
    for association, subnet in list(table._associations.items()):
        if subnet == self.subnet_id:
            del table._associations[association]
def _igw_delete(self, account_id, region_name):
    _ec2_backends[account_id][region_name].delete_internet_gateway(self.id)
def _attachment_delete(self, account_id, region_name):
    backend = _ec2_backends[account_id][region_name]
    if self.gateway_id.startswith("igw-"):
        backend.detach_internet_gateway(self.gateway_id, self.vpc_id)
    else:
        backend.detach_vpn_gateway(self.gateway_id, self.vpc_id)
_RouteTable.delete = _rt_delete
_Route.delete = _route_delete
_Assoc.delete = _assoc_delete
_Igw.delete = _igw_delete
_Attachment.delete = _attachment_delete

# 6. AWS::StepFunctions::StateMachine: moto reads only DefinitionString and
#    ignores Definition (an object) and DefinitionSubstitutions, so the
#    state machine is stored with an empty definition.
import json as _json
import re as _re
from moto.stepfunctions import models as _sfn

def _definition_string(properties):
    if "Definition" in properties and "DefinitionString" not in properties:
        text = _json.dumps(properties["Definition"])
        substitutions = properties.get("DefinitionSubstitutions", {})
        text = _re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: str(substitutions.get(m.group(1), m.group(0))), text)
        properties["DefinitionString"] = text

_orig_sm_create = _sfn.StateMachine.create_from_cloudformation_json.__func__
def _sm_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    _definition_string(cloudformation_json["Properties"])
    return _orig_sm_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
_sfn.StateMachine.create_from_cloudformation_json = classmethod(_sm_create)
_orig_sm_update = _sfn.StateMachine.update_from_cloudformation_json.__func__
def _sm_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
    _definition_string(cloudformation_json.get("Properties", {}))
    return _orig_sm_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
_sfn.StateMachine.update_from_cloudformation_json = classmethod(_sm_update)

# 7. AWS::ECR::Repository: EmptyOnDelete is ignored, so deleting a stack
#    whose repository holds images fails with RepositoryNotEmptyException.
from moto.ecr.models import ecr_backends as _ecr_backends
_orig_delete_resource = _cfp.ResourceMap._delete_resource
def _delete_resource(self, parsed_resource, resource_json):
    if resource_json.get("Type") == "AWS::ECR::Repository" and resource_json.get("Properties", {}).get("EmptyOnDelete") in (True, "true"):
        _ecr_backends[self._account_id][self._region_name].delete_repository(parsed_resource.name, force=True)
        return
    return _orig_delete_resource(self, parsed_resource, resource_json)
_cfp.ResourceMap._delete_resource = _delete_resource

# 8. DescribeStacks by id of a deleted stack (how a deletion is followed to
#    its end; by name a deleted stack no longer exists) evaluates its
#    Outputs again, which re-creates the deleted resources and fails with
#    their "already exists" (e.g. a Batch job queue). AWS answers with the
#    stack in DELETE_COMPLETE and no outputs.
_orig_outputs = _cfm.Stack.__dict__["outputs"]
def _outputs(self):
    if self.status == "DELETE_COMPLETE":
        return None
    return _orig_outputs.fget(self)
_cfm.Stack.outputs = property(_outputs)

# 9. AWS::ApiGateway::UsagePlan is not supported by moto's CloudFormation: it
#    is skipped, its Ref resolves to nothing and the UsagePlanId export (which
#    the spend cap's role is scoped by) is missing, so the monitoring stack
#    fails to import it. Create it through moto's own API backend.
from moto.core.common_models import CloudFormationModel as _CfnModel
from moto.apigateway.models import apigateway_backends as _apigw_backends
class _CfnUsagePlan(_CfnModel):
    # moto files every model under the service its module names.
    __module__ = "moto.apigateway.models"

    @staticmethod
    def cloudformation_name_type():
        return "UsagePlanName"

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGateway::UsagePlan"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        p = cloudformation_json["Properties"]
        payload = {"name": p.get("UsagePlanName", resource_name), "description": p.get("Description")}
        if "Throttle" in p:
            payload["throttle"] = {"rateLimit": float(p["Throttle"]["RateLimit"]), "burstLimit": int(p["Throttle"]["BurstLimit"])}
        if "Quota" in p:
            payload["quota"] = {"limit": int(p["Quota"]["Limit"]), "period": p["Quota"]["Period"]}
        plan = _apigw_backends[account_id][region_name].create_usage_plan(payload)
        plan.physical_resource_id = plan.id
        return plan

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        _apigw_backends[account_id][region_name].usage_plans.pop(resource_name, None)
