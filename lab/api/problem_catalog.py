"""What each problem type means and how to fix it, in English and Chinese.

Every problem document the API sends has ``type: <API prefix>/problems/<code>``; the lab serves a page
for each code from this catalog (:mod:`lab.api.routes.problems`). Every :class:`~lab.errors.LabError`
subclass's code has an entry (a test enumerates them), as do the four problems the handlers raise
themselves (``validation``, ``unstorable-value``, ``number-out-of-range``, ``internal``).

>>> describe("budget-exhausted", "en").title
'Privacy budget exhausted'
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.errors import LabError


@dataclass(frozen=True)
class Text:
    title: str
    meaning: str
    fix: str


@dataclass(frozen=True)
class Entry:
    status: int
    en: Text
    zh: Text


def _e(status: int, en: tuple[str, str, str], zh: tuple[str, str, str]) -> Entry:
    return Entry(status, Text(*en), Text(*zh))


CATALOG: dict[str, Entry] = {
    "bad-request": _e(
        400,
        ("Bad request", "The request is malformed or a value is out of its allowed range.",
         "Read the detail, correct the named value and send the request again."),
        ("请求有误", "请求格式错误，或某个取值超出允许范围。", "按 detail 的说明修正相应取值后重新提交。"),
    ),
    "invalid-policy": _e(
        400,
        ("Invalid dataset policy", "The dataset policy (YAML) does not validate: a field is missing, "
         "unknown or contradicts another.", "Fix the policy file as the detail says (see docs/catalog.md) "
         "and import again."),
        ("数据集策略无效", "数据集策略（YAML）校验失败：字段缺失、未知或相互矛盾。",
         "按 detail 修改策略文件（见 docs/catalog.md）后重新导入。"),
    ),
    "invalid-dataset": _e(
        400,
        ("Dataset does not match its schema", "A row or column of the uploaded data does not match the "
         "catalog entry's schema (type, domain, identifier format).",
         "Correct the data at the reported row and column, or the schema, and import again."),
        ("数据与目录结构不符", "上传数据的某行或某列与目录条目的结构不符（类型、取值域、标识符格式）。",
         "按报告的行列修正数据或结构定义后重新导入。"),
    ),
    "invalid-proof": _e(
        400,
        ("Proof does not verify", "An inclusion or consistency proof, a tree size or a certificate does "
         "not verify against the ledger.", "Ask for a proof against the current tree head; if a "
         "certificate fails, obtain it again from the lab and report a persisting failure to the bureau."),
        ("证明校验失败", "包含证明、一致性证明、树大小或证书无法对账本校验通过。",
         "以当前签名树头重新获取证明；证书仍校验失败时请重新获取并报告数据局。"),
    ),
    "invalid-query": _e(
        400,
        ("Invalid query", "The DP query spec is not allowed: an unknown column, bounds wider than the "
         "policy, a group-by without a declared domain, or a filter on a non-public column.",
         "Use c.catalog.get(dataset) to see the columns, domains and bounds, and adjust the spec."),
        ("查询无效", "差分隐私查询不被允许：列不存在、边界超出策略、分组列未声明取值域或过滤非公开列。",
         "用 c.catalog.get(数据集) 查看列、取值域与边界后调整查询。"),
    ),
    "unauthenticated": _e(
        401,
        ("Authentication required", "No valid token came with the request.",
         "Send 'Authorization: token <JupyterHub API token>' (in a notebook lab.client does it), or a "
         "Keycloak client-credentials JWT for machine clients."),
        ("需要身份认证", "请求未携带有效令牌。",
         "携带 'Authorization: token <JupyterHub API 令牌>'（笔记本中 lab.client 会自动携带），"
         "机器客户端使用 "
         "Keycloak 客户端凭证 JWT。"),
    ),
    "forbidden": _e(
        403,
        ("Forbidden", "Your roles or project membership do not allow this action.",
         "Check the role it needs (the detail names it); ask the bureau to add you to the project or "
         "grant the role."),
        ("无权操作", "您的角色或项目成员身份不允许此操作。",
         "查看 detail 中所需的角色；请数据局将您加入项目或授予角色。"),
    ),
    "not-in-grant": _e(
        403,
        ("Not in the project's grant", "The dataset, channel, mode, column, model or cost is outside "
         "what the project was granted (minimum necessary, article 18).",
         "Stay within the grant (c.projects.get(id)); if the purpose needs more, apply for a change."),
        ("超出项目授权", "数据集、通道、模式、列、模型或成本超出项目授权范围（最小必要原则，第十八条）。",
         "在授权范围内操作（c.projects.get(id)）；确需更多时提交变更申请。"),
    ),
    "project-inactive": _e(
        403,
        ("Project is not active", "The project is pending, suspended, ended or past its term; no channel "
         "serves it.", "Wait for approval or resumption, or apply for a new project; an ended project's "
         "working data has been disposed of."),
        ("项目未在有效期内", "项目待审批、已暂停、已结束或已过期，所有通道均不再提供服务。",
         "等待审批或恢复，或重新申请项目；已结束项目的工作数据已被销毁。"),
    ),
    "self-review": _e(
        403,
        ("Reviewers may not review their own project", "A bureau reviewer who applied for or belongs to a "
         "project (or submitted a product) may not review it.", "Ask another bureau reviewer to review."),
        ("不得审核本人项目", "申请或参与项目（或提交产品）的审核员不得审核该项目或产品。",
         "请其他审核员审核。"),
    ),
    "csrf": _e(
        403,
        ("Form token missing or invalid", "The form's CSRF token is missing, wrong or from another "
         "session.", "Reload the page and submit the form again."),
        ("表单令牌无效", "表单的防跨站令牌缺失、错误或属于其他会话。", "刷新页面后重新提交表单。"),
    ),
    "login-required": _e(
        401,
        ("Login required", "The page needs a signed-in session.", "Log in through JupyterHub."),
        ("需要登录", "该页面需要登录会话。", "通过 JupyterHub 登录。"),
    ),
    "not-found": _e(
        404,
        ("Not found", "Nothing with that id exists, or you may not know of it.",
         "Check the id; list what you may see (c.projects.list(), c.products.list())."),
        ("未找到", "该标识不存在，或您无权知悉其存在。",
         "核对标识；列出您可见的对象（c.projects.list()、c.products.list()）。"),
    ),
    "dataset-not-found": _e(
        404,
        ("Dataset not found", "No catalog entry (or version) has that id.",
         "Use c.catalog.list() for the ids and versions."),
        ("数据集不存在", "目录中没有该标识（或版本）的条目。", "用 c.catalog.list() 查看标识与版本。"),
    ),
    "project-not-found": _e(
        404,
        ("Project not found", "No project with that id is visible to you — it does not exist, or you "
         "are not its member (the lab answers the same in both cases).",
         "Check the id with c.projects.list(); ask the applicant or the bureau to add you."),
        ("项目不存在", "您看不到该标识的项目——项目不存在或您不是成员（两种情况回答相同）。",
         "用 c.projects.list() 核对标识；请申请人或数据局将您加入项目。"),
    ),
    "entry-not-found": _e(
        404,
        ("Ledger entry not found", "The ledger has no entry at that index.",
         "Use an index below the current tree size (c.ledger.head())."),
        ("账本条目不存在", "账本在该序号处没有条目。", "使用小于当前树大小的序号（c.ledger.head()）。"),
    ),
    "record-not-found": _e(
        404,
        ("Derived record not found", "No derived record with that id is visible to you.",
         "Use the record_id a channel result returned, or c.records.list()."),
        ("衍生记录不存在", "您看不到该标识的衍生记录。",
         "使用通道结果返回的 record_id，或 c.records.list()。"),
    ),
    "product-not-found": _e(
        404,
        ("Product not found", "No product, version or certificate with that id or number.",
         "Check the id or registration number; a certificate exists only for an approved version."),
        ("产品不存在", "没有该标识或登记号的产品、版本或证书。",
         "核对标识或登记号；只有已批准的版本才有证书。"),
    ),
    "conflict": _e(
        409,
        ("Conflict", "The request conflicts with the current state (e.g. the same reviewer approving "
         "twice, a name already taken).", "Reload the current state and act on it."),
        ("状态冲突", "请求与当前状态冲突（如同一审核员重复批准、名称已被占用）。", "刷新当前状态后再操作。"),
    ),
    "budget-exhausted": _e(
        409,
        ("Privacy budget exhausted", "The query would spend more ε (or δ) than the project's or the "
         "dataset's remaining budget.", "Spend less per query (preview first: c.dp.preview), reuse "
         "released results, or ask the bureau for a larger budget in a new application."),
        ("隐私预算不足", "查询所需 ε（或 δ）超过项目或数据集的剩余预算。",
         "降低单次花费（先用 c.dp.preview 预估），复用已发布结果，或在新申请中请数据局增加预算。"),
    ),
    "invalid-transition": _e(
        409,
        ("Transition not allowed", "The project or product is not in a state that allows this step "
         "(e.g. reviewing an approved version).", "Check its status and the lifecycle in docs/projects.md "
         "or docs/products.md."),
        ("状态不允许此操作", "项目或产品当前状态不允许此步骤（如审核已批准的版本）。",
         "查看其状态及 docs/projects.md、docs/products.md 中的生命周期。"),
    ),
    "account-rule-fixed": _e(
        409,
        ("Account composition rule is fixed", "The new policy version declares a different composition "
         "rule (account.composition: basic or zcdp) than the dataset's existing privacy-loss account; an "
         "account keeps one rule for its whole life, since switching rules is not a proven privacy filter.",
         "Import the version with the account's current composition (see the problem's 'composition')."),
        ("账户组合规则不可更改", "新版本策略声明的组合规则（account.composition：basic 或 zcdp）"
         "与该数据集已有的隐私损失账户不同；账户终身只用一种规则，切换规则不是经证明的隐私过滤器。",
         "按账户现有的组合规则（见问题中的 composition）导入新版本。"),
    ),
    "payload-too-large": _e(
        413,
        ("Payload too large", "The request body exceeds the lab's limit (max_bytes in the problem).",
         "Send less per request: split the upload or the encrypted batch into parts."),
        ("请求体过大", "请求体超过上限（见问题中的 max_bytes）。",
         "减少单次请求的数据量：拆分上传或加密批次。"),
    ),
    "too-many-requests": _e(
        429,
        ("Too many requests", "A rate limit was reached.", "Wait and retry later."),
        ("请求过多", "已达到频率上限。", "稍后重试。"),
    ),
    "quota-exceeded": _e(
        429,
        ("Quota exceeded", "The project's PSI requests per day or HE records scored reached the quota "
         "(quota and used in the problem).", "Wait for the next day (PSI) or ask the bureau for a larger "
         "quota in a new application."),
        ("配额已用尽", "项目的每日 PSI 次数或 HE 评分记录数已达配额（见问题中的 quota 与 used）。",
         "等待次日（PSI），或在新申请中请数据局提高配额。"),
    ),
    "integrity": _e(
        500,
        ("Integrity failure", "The lab found its own data inconsistent.",
         "Nothing to fix on your side; report the time and the detail to the bureau."),
        ("完整性故障", "实验室发现自身数据不一致。", "无需您处理；请将时间与 detail 报告数据局。"),
    ),
    "corrupt-object": _e(
        500,
        ("Stored object is corrupt", "A stored object does not match its SHA-256.",
         "Report it to the bureau; the object must be restored from a backup."),
        ("存储对象已损坏", "存储对象与其 SHA-256 不符。", "报告数据局，须从备份恢复该对象。"),
    ),
    "ledger-tampered": _e(
        500,
        ("Ledger does not verify", "Recomputing the ledger found an entry or tree head that does not "
         "match.", "Report it to the bureau and the auditors at once; verify certificates against "
         "witnessed checkpoints."),
        ("账本校验失败", "重新计算账本时发现条目或树头不符。",
         "立即报告数据局与审计员；以见证的检查点核验证书。"),
    ),
    "unavailable": _e(
        503,
        ("Service unavailable", "A service the lab needs (database, object storage, JupyterHub) does not "
         "answer.", "Retry in a moment; if it persists, tell the lab's operators."),
        ("服务不可用", "实验室依赖的服务（数据库、对象存储、JupyterHub）无响应。",
         "稍后重试；持续出现请通知运维。"),
    ),
    "invalid-project": _e(
        400,
        ("Invalid project application", "A field of the application is missing or not allowed (datasets, "
         "channels, budgets, term, members).", "Fix the named field (see docs/projects.md) and apply "
         "again."),
        ("项目申请无效", "申请中某字段缺失或不被允许（数据集、通道、预算、期限、成员）。",
         "按 docs/projects.md 修正相应字段后重新申请。"),
    ),
    "invalid-artifact": _e(
        400,
        ("Artifact refused", "The product's file is empty, its SHA-256 differs from the declared one, or "
         "it does not fit the product type.", "Upload the exact file you hashed; API products send an "
         "endpoint description instead of a file."),
        ("产品文件被拒绝", "产品文件为空、SHA-256 与声明不符，或与产品类型不符。",
         "上传与摘要一致的文件；API 类产品提交端点描述而非文件。"),
    ),
    "invalid-lineage": _e(
        400,
        ("Lineage refused", "A derived record in derived_from is unknown, belongs to another project or "
         "does not match its ledger entry.", "Name only your project's records (c.records.list())."),
        ("来源记录被拒绝", "derived_from 中的衍生记录不存在、属于其他项目或与账本条目不符。",
         "只引用本项目的记录（c.records.list()）。"),
    ),
    "project-mismatch": _e(
        400,
        ("Project differs from the path", "A channel route is scoped by the project in its path "
         "(/api/v1/projects/{project}/psi/..., /he/...); the JSON body, the HE frame header or the PSI "
         "envelope named another project.", "Send the request under the path of its session's or "
         "call's project; leave project out of JSON bodies and HE headers (lab.client does both)."),
        ("项目与路径不符", "通道接口以路径中的项目为准（/api/v1/projects/{project}/psi/…、/he/…）；"
         "JSON 请求体、HE 帧头或 PSI 消息却写了另一个项目。",
         "把请求发到其会话或调用所属项目的路径下；JSON 请求体和 HE 帧头中不写项目"
         "（lab.client 会自动处理）。"),
    ),
    "psi-protocol": _e(
        400,
        ("Malformed PSI message", "A PSI envelope is malformed, replayed, for another session, or its "
         "sizes differ from the declared ones.", "Use lab.client's PSI (c.psi.intersect); start a new "
         "session for every run."),
        ("PSI 消息格式错误", "PSI 消息格式错误、被重放、属于其他会话或大小与声明不符。",
         "使用 lab.client 的 PSI（c.psi.intersect），每次运行新建会话。"),
    ),
    "he-context-rejected": _e(
        400,
        ("Context rejected", "The CKKS context carries a secret key, uses parameters outside the approved "
         "sets, or is below 128-bit security.", "Create it with c.he.context('ckks-8192') and upload the "
         "public part only."),
        ("加密上下文被拒绝", "CKKS 上下文含私钥、参数不在批准集合内或安全强度低于 128 位。",
         "用 c.he.context('ckks-8192') 创建并只上传公开部分。"),
    ),
    "he-input-rejected": _e(
        400,
        ("Encrypted input rejected", "A ciphertext does not belong to the registered context or its "
         "layout differs from the plan.", "Encrypt with the context you registered, as c.he.score does."),
        ("加密输入被拒绝", "密文不属于已登记的上下文，或布局与计划不符。",
         "使用已登记的上下文加密（c.he.score 会自动处理）。"),
    ),
    "he-worker-crashed": _e(
        400,
        ("The input crashed the isolated worker", "Parsing your context or ciphertexts crashed the "
         "isolated worker; nothing was charged.", "Re-create the context and ciphertexts with lab.client."),
        ("输入导致隔离进程崩溃", "解析您的上下文或密文时隔离进程崩溃；未计费。",
         "用 lab.client 重新生成上下文与密文。"),
    ),
    "he-memory": _e(
        413,
        ("Encrypted computation exceeds the memory limit", "The encrypted batch needs more memory than a "
         "worker may use.", "Send fewer records per call (the client splits large batches)."),
        ("加密计算超出内存上限", "加密批次所需内存超过单个进程上限。",
         "减少每次调用的记录数（客户端会拆分大批次）。"),
    ),
    "he-timeout": _e(
        503,
        ("Encrypted computation timed out", "The computation did not finish within the worker's time "
         "limit; nothing was charged.", "Retry with fewer records per call."),
        ("加密计算超时", "计算未在时限内完成；未计费。", "减少每次调用的记录数后重试。"),
    ),
    "he-busy": _e(
        503,
        ("All homomorphic workers are busy", "Every isolated HE worker is in use.", "Retry shortly."),
        ("同态计算进程繁忙", "所有隔离的同态计算进程都在使用中。", "稍后重试。"),
    ),
    "he-open-calls": _e(
        429,
        ("Too many open HE calls", "You, or your project, already hold the most multi-part HE calls "
         "allowed open at once (LAB_HE__MAX_OPEN_CALLS_PER_CALLER / _PER_PROJECT); nothing of this call "
         "was stored.", "Commit or abandon an open call (DELETE /api/v1/projects/{project}/he/calls/{id}), "
         "or wait the seconds in Retry-After, when the oldest open call expires."),
        ("未完成的同态调用过多", "您本人或所在项目同时未完成的分段同态调用已达上限"
         "（LAB_HE__MAX_OPEN_CALLS_PER_CALLER / _PER_PROJECT）；本次调用未存储任何内容。",
         "提交或放弃一个未完成的调用（DELETE /api/v1/projects/{project}/he/calls/{id}），"
         "或按 Retry-After 所示秒数等待最早的调用过期。"),
    ),
    "psi-invalid-proof": _e(
        400,
        ("Invalid PSI cohort proof", "The cohort answer does not carry a valid proof (RFC 9497 batched "
         "DLEQ) that it is the lab's request raised to one secret key; nothing was stored or charged.",
         "Answer with the unmodified lab.client, which builds the proof; do not edit the answer."),
        ("PSI 群组证明无效",
         "群组应答未附带有效证明（RFC 9497 批量 DLEQ）以表明其为实验室请求在同一密钥下的幂；未存储、未计费。",
         "使用未经修改的 lab.client 应答（它会生成证明），不要改动应答内容。"),
    ),
    "psi-set-size": _e(
        400,
        ("Unsupported PSI set size", "A PSI structure was asked for a set size it cannot be built for.",
         "Send a set within the policy's minimum and maximum client set sizes."),
        ("PSI 集合大小不受支持", "请求的集合大小无法构建 PSI 数据结构。",
         "发送介于策略最小与最大客户端集合之间的集合。"),
    ),
    "material-not-released": _e(
        403,
        ("Material is neither DP-released nor published", "A bureau model or table can be used only "
         "once it is released: promoted from a DP release or published with its values given to "
         "operators.", "Ask the bureau to promote the material from a DP release or to publish it."),
        ("材料未发布", "数据局的模型或统计表须先发布（由差分隐私发布转入，或公开其取值）后方可使用。",
         "请数据局将该材料由差分隐私发布转入或正式公开。"),
    ),
    "privacy-leak": _e(
        500,
        ("Release refused: privacy leak", "The DP library warned that this release would leak beyond "
         "its ε; nothing was released or charged.", "Narrow the bounds or the features as the detail "
         "says, or report the request to the lab's operators."),
        ("发布被拒绝：隐私泄露", "差分隐私库警告本次发布将超出其 ε；未发布、未计费。",
         "按 detail 收窄取值范围或特征，或将请求报告运维。"),
    ),
    "busy": _e(
        429,
        ("Busy: retry later", "Admission control refused heavy work for now: your own, your project's or "
         "the lab's limit of concurrent heavy queries, or their estimated cost, is reached.",
         "Wait the seconds in Retry-After and send the request again, or make the query smaller "
         "(fewer groups, aggregations or quantile levels)."),
        ("繁忙：请稍后重试",
         "准入控制暂不接受重型计算：您本人、所在项目或实验室的并发重型查询数或其估算成本已达上限。",
         "按 Retry-After 所示秒数等待后重试，或缩小查询（更少的分组、聚合或分位点）。"),
    ),
    "number-out-of-range": _e(
        400,
        ("Number out of range", "A number in the request overflowed or vanished in arithmetic (too many "
         "digits, an absurd exponent, or values equal once converted to the engine's type).",
         "Send finite numbers within the policy's bounds, with bounds that differ as floating-point "
         "values."),
        ("数值超出范围", "请求中的某个数值在运算中溢出或下溢（位数过多、指数过大，或换算为引擎类型后相等）。",
         "提交策略范围内的有限数值，且上下界换算为浮点数后仍须不同。"),
    ),
    "validation": _e(
        422,
        ("Request does not validate", "The body, path or query does not match the route's schema "
         "(errors lists each field).", "Fix each field in errors; the OpenAPI document at /docs shows "
         "the schema."),
        ("请求校验失败", "请求体、路径或查询参数不符合接口结构（errors 列出各字段）。",
         "逐一修正 errors 中的字段；/docs 中的 OpenAPI 文档给出结构。"),
    ),
    "unstorable-value": _e(
        400,
        ("Value cannot be stored", "A value cannot be stored: a NUL character, a number out of range or "
         "a string too long.", "Remove control characters and shorten or bound the value."),
        ("取值无法存储", "某个取值无法存储：含 NUL 字符、数值越界或字符串过长。",
         "去除控制字符并缩短或限制该取值。"),
    ),
    "internal": _e(
        500,
        ("Internal error", "An unexpected error occurred; it was logged.",
         "Retry once; if it persists, report the time and the request to the lab's operators."),
        ("内部错误", "发生意外错误，已记录日志。", "重试一次；仍出现时请将时间与请求报告运维。"),
    ),
}  # fmt: skip


def lab_error_codes() -> dict[str, type[LabError]]:
    """Every :class:`LabError` subclass loaded in this process, by code."""
    found: dict[str, type[LabError]] = {LabError.code: LabError}
    stack = list(LabError.__subclasses__())
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


def describe(code: str, lang: str) -> Text:
    """The text of ``code`` in ``lang`` (``zh`` or ``en``); :class:`KeyError` for an unknown code."""
    entry = CATALOG[code]
    return entry.zh if lang == "zh" else entry.en
