# Copyright (c) SMT-MM contributors. All rights reserved.
"""README.md and docs/*.md stay true: relative links and their anchors
resolve, the repository paths and ``smt_mm.*`` modules they name exist, the
tool command lines use only flags the tools accept, no page holds a
placeholder or words about the machines the project is built on, and the
README stays a landing page (≤ 300 lines) that keeps the two set-up blocks
``.ci/run`` executes."""
import ast
import functools
import glob
import os.path as osp
import re
import shlex
import sys

import pytest
from helpers import REPO

# part of the developer loop: python -m pytest tests -m quick
pytestmark = pytest.mark.quick

README = osp.join(REPO, 'README.md')
DOCS = osp.join(REPO, 'docs')
README_MAX_LINES = 300


def pages():
    """README.md and every docs/*.md, as repository-relative paths."""
    found = ['README.md'] + sorted(
        osp.relpath(p, REPO) for p in glob.glob(osp.join(DOCS, '*.md')))
    assert len(found) > 1, 'docs/*.md: no pages found'
    return found


def read(page):
    with open(osp.join(REPO, page), encoding='utf-8') as f:
        return f.read()


FENCE = re.compile(r'^(```|~~~)')


def split_fences(text):
    """(prose with fenced blocks blanked, [(language, block text)])."""
    prose, blocks, block, lang = [], [], None, ''
    for line in text.split('\n'):
        if FENCE.match(line.strip()) and block is None:
            block, lang = [], line.strip()[3:].strip().lower()
            prose.append('')
        elif FENCE.match(line.strip()):
            blocks.append((lang, '\n'.join(block)))
            block = None
            prose.append('')
        elif block is not None:
            block.append(line)
            prose.append('')
        else:
            prose.append(line)
    assert block is None, 'a fenced code block is never closed'
    return '\n'.join(prose), blocks


# ---------------------------------------------------------------------------
# 1. links and anchors
# ---------------------------------------------------------------------------
LINK = re.compile(r'!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?'
                  r'(?:\s+"[^"]*")?\s*\)')
INLINE_CODE = re.compile(r'`+[^`]*`+', re.S)


def github_slug(heading):
    """GitHub's anchor of a heading: link text kept, markup and punctuation
    dropped, lower case, spaces to hyphens."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)
    text = re.sub(r'[^\w\- ]', '', text.strip().lower())
    return text.replace(' ', '-')


def anchors(page):
    prose, _ = split_fences(read(page))
    seen, slugs = {}, set()
    for line in prose.split('\n'):
        match = re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f'{slug}-{count}')
    return slugs


def links(page):
    prose, _ = split_fences(read(page))
    prose = INLINE_CODE.sub('', prose)
    return [m.group(1) for m in LINK.finditer(prose)]


def link_problems(page):
    problems = []
    for target in links(page):
        if re.match(r'[a-z][a-z0-9+.-]*:', target):  # http:, mailto:, ...
            continue
        path, _, anchor = target.partition('#')
        resolved = page
        if path:
            resolved = osp.normpath(osp.join(osp.dirname(page), path))
        if not osp.exists(osp.join(REPO, resolved)):
            problems.append(f'{page}: link {target!r}: {resolved} not found')
        elif anchor and not resolved.endswith('.md'):
            problems.append(f'{page}: link {target!r}: anchor into a non-'
                            'markdown file')
        elif anchor and anchor not in anchors(resolved):
            problems.append(f'{page}: link {target!r}: no heading '
                            f'#{anchor} in {resolved}')
    return problems


def test_github_slug():
    assert github_slug('Your Python and torch') == 'your-python-and-torch'
    assert github_slug('What `--resume` refuses') == 'what---resume-refuses'
    assert github_slug("mmpretrain's model hub") == 'mmpretrains-model-hub'
    assert github_slug('Real-data check: handwritten digits on CPU') == \
        'real-data-check-handwritten-digits-on-cpu'
    assert github_slug('Detection (mmdet)') == 'detection-mmdet'


@pytest.mark.parametrize('page', pages())
def test_relative_links_resolve(page):
    assert link_problems(page) == []


def test_a_broken_link_is_found(tmp_path, monkeypatch):
    page = tmp_path / 'docs' / 'x.md'
    page.parent.mkdir()
    page.write_text('# X\n\n## A heading\n\n[ok](#a-heading) [self](x.md) '
                    '[gone](nothing.md) [bad](#no-such-heading) '
                    '`[code](not-a-link.md)` [web](https://example.com)\n')
    monkeypatch.setattr(sys.modules[__name__], 'REPO', str(tmp_path))
    problems = link_problems('docs/x.md')
    assert len(problems) == 2, problems
    assert 'nothing.md not found' in problems[0]
    assert '#no-such-heading' in problems[1]


def test_docs_index_lists_every_page():
    linked = {
        osp.normpath(osp.join('docs',
                              t.partition('#')[0]))
        for t in links('docs/README.md')
    }
    unlisted = [p for p in pages()[1:] if p not in linked | {'docs/README.md'}]
    assert unlisted == [], 'docs/README.md does not link ' + str(unlisted)
    assert 'docs/README.md' in links('README.md')


# ---------------------------------------------------------------------------
# 2. repository paths and modules named in the pages
# ---------------------------------------------------------------------------
PATH = re.compile(r'(?<![\w./:~$-])((?:tools|configs|smt_mm|tests|'
                  r'requirements|benchmarks)/[\w./{},*<>\[\]+-]*)')
# made by the install (git-ignored), not present in a bare checkout
GENERATED = {'smt_mm/.mim'}


def expand_braces(path):
    match = re.search(r'\{([^{}]*,[^{}]*)\}', path)
    if not match:
        return [path]
    return [
        p for alt in match.group(1).split(',')
        for p in expand_braces(path[:match.start()] + alt + path[match.end():])
    ]


def named_paths(text):
    for match in PATH.finditer(text):
        yield match.group(1).rstrip('.,')


def missing_paths(text):
    missing = []
    for named in named_paths(text):
        if named in GENERATED:
            continue
        for path in expand_braces(named):
            # a template (smt_<size>_..., [DIR]): its folder must exist
            cut = re.search(r'[<\[]', path)
            if cut:
                path = osp.dirname(path[:cut.start()])
            if not glob.glob(osp.join(REPO, path)):
                shown = named if path == named else f'{path} (of {named})'
                missing.append(shown)
    return missing


def test_paths_are_expanded_and_templates_cut():
    names = list(
        named_paths('`tools/slurm_{train,test}.sh`, see configs/det/x.py. '
                    '/abs/tools/no.py mmdet::configs/no.py'))
    assert names == ['tools/slurm_{train,test}.sh', 'configs/det/x.py']
    assert expand_braces('a/{b,c}/d_{e,f}') == \
        ['a/b/d_e', 'a/b/d_f', 'a/c/d_e', 'a/c/d_f']
    assert missing_paths('configs/{cls,det}/smt_<size>_<m>.py') == []
    assert missing_paths('`tools/{train,nothing}.py`') == [
        'tools/nothing.py (of tools/{train,nothing}.py)'
    ]


@pytest.mark.parametrize('page', pages())
def test_named_repository_paths_exist(page):
    assert missing_paths(read(page)) == []


MODULE = re.compile(r'(?<![\w./-])smt_mm((?:\.\w+)+)')


def module_problem(dotted):
    """None when ``smt_mm.<dotted>`` names a module, or a name found in the
    source of the module it ends in."""
    parts = dotted.strip('.').split('.')
    path = osp.join(REPO, 'smt_mm')
    for i, part in enumerate(parts):
        if osp.isfile(osp.join(path, part + '.py')):
            module = osp.join(path, part + '.py')
            rest = parts[i + 1:]
            break
        if osp.isfile(osp.join(path, part, '__init__.py')):
            path = osp.join(path, part)
            continue
        module, rest = osp.join(path, '__init__.py'), parts[i:]
        break
    else:
        return None
    if rest and not re.search(rf'\b{re.escape(rest[0])}\b',
                              open(module, encoding='utf-8').read()):
        return f'smt_mm{dotted}: {rest[0]!r} not in ' + osp.relpath(
            module, REPO)
    return None


def test_module_problem():
    assert module_problem('.files.check_output_file') is None
    assert module_problem('.launch.upstream') is None
    assert 'no_such_thing' in module_problem('.files.no_such_thing')
    assert 'nothing_here' in module_problem('.nothing_here.x')


@pytest.mark.parametrize('page', pages())
def test_named_modules_exist(page):
    problems = [
        module_problem(m.group(1)) for m in MODULE.finditer(read(page))
    ]
    assert [p for p in problems if p] == []


def drawing_rows(drawing):
    """The rows of a layering drawing, top down: the names of the boxes of
    each row (the first word of each box's first line), then the
    comma-separated names of its bottom line."""
    lines = [line for line in drawing.split('\n') if line.strip()]
    rows = []
    for above, top, first in zip([''] + lines, lines, lines[1:]):
        # a top border: under a line that is not a box row (arrows are)
        if top.strip().startswith('+-') and first.strip().startswith('|') \
                and above.count('|') < 2:
            rows.append([
                re.match(r'\s*(\w*)', cell).group(1)
                for cell in first.split('|')[1::2]
            ])
    rows.append([word.strip() for word in lines[-1].split(',')])
    return rows


def test_drawing_rows():
    assert drawing_rows(' +--+  +--+\n | a x |  | b y |   note\n'
                        ' +--+  +--+   more\n     |\n +---+\n | c z |\n'
                        ' |   w |\n +---+\n d, e\n') == \
        [['a', 'b'], ['c'], ['d', 'e']]


def architecture_drawing():
    _, blocks = split_fences(read('docs/architecture.md'))
    return next(b for _, b in blocks if 'errors, version' in b)


def test_architecture_drawing_shows_the_package():
    """The layering drawing has one box per subpackage of smt_mm as it is
    now: none missing, none that no longer exists."""
    parts = {
        osp.basename(p)[:-3] if p.endswith('.py') else osp.basename(p)
        for p in glob.glob(osp.join(REPO, 'smt_mm', '*'))
        if (p.endswith('.py') and not p.endswith('__init__.py'))
        or osp.isfile(osp.join(p, '__init__.py'))
    }
    labels = sum(drawing_rows(architecture_drawing()), [])
    assert sorted(labels) == sorted(parts), (
        'docs/architecture.md: the drawing shows ' + str(sorted(labels)) +
        ', smt_mm holds ' + str(sorted(parts)))


def test_architecture_drawing_follows_the_layout_test():
    """Its rows, bottom up, are the layers tests/test_utils/test_layout.py
    enforces (its LAYERS list)."""
    path = osp.join(REPO, 'tests', 'test_utils', 'test_layout.py')
    tree = ast.parse(open(path, encoding='utf-8').read())
    layers = next(
        ast.literal_eval(node.value) for node in tree.body
        if isinstance(node, ast.Assign) and any(
            getattr(t, 'id', None) == 'LAYERS' for t in node.targets))
    rows = drawing_rows(architecture_drawing())[::-1]
    assert [set(r) for r in rows] == [set(layer) for layer in layers]


# ---------------------------------------------------------------------------
# 3. command lines use only flags the tools accept
# ---------------------------------------------------------------------------
# the launchers hand their extra arguments to these tools
LAUNCHED = {
    'tools/dist_train.sh': 'tools/train.py',
    'tools/dist_test.sh': 'tools/test.py',
    'tools/slurm_train.sh': 'tools/train.py',
    'tools/slurm_test.sh': 'tools/test.py',
}
TOOL = re.compile(r'(?:^|/)(tools/[\w/-]+\.(?:py|sh))$')
FLAG = re.compile(r'^\[*(--?[A-Za-z][\w-]*)')
_FLAGS = {}


def _module_file(module):
    base = osp.join(REPO, *module.split('.'))
    for path in (base + '.py', osp.join(base, '__init__.py')):
        if osp.isfile(path):
            return path
    return None


def _flags_of_function(node, path, imports, seen):
    """Flags of the ``add_argument`` calls in ``node`` (of file ``path``),
    following calls to functions of that file and of smt_mm modules."""
    flags = set()
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == 'add_argument':
            flags |= {
                a.value
                for a in call.args if isinstance(a, ast.Constant)
                and isinstance(a.value, str) and a.value.startswith('-')
            }
            continue
        if isinstance(func, ast.Name):  # add_common_args(parser)
            target = imports.get(func.id, (path, func.id))
        elif isinstance(func, ast.Attribute) and isinstance(
                func.value, ast.Name) and func.value.id in imports:
            target = (imports[func.value.id][0], func.attr)  # cli.add_x(p)
        else:
            continue
        if target[0] and target[1] and target not in seen:
            seen.add(target)
            flags |= _flags_in(*target, seen)
    return flags


@functools.lru_cache(maxsize=None)
def _parse(path):
    """The file's syntax tree and its smt_mm imports: {name: (file,
    function name, or None for a module)}."""
    tree = ast.parse(open(path, encoding='utf-8').read())
    imports = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and (
                node.module or '').startswith('smt_mm'):
            for alias in node.names:
                module = _module_file(f'{node.module}.{alias.name}')
                if module:  # from smt_mm.launch import cli
                    target = (module, None)
                else:  # from smt_mm.launch.cli import add_common_args
                    target = (_module_file(node.module), alias.name)
                imports[alias.asname or alias.name] = target
    return tree, imports


def _flags_in(path, function, seen):
    """Flags that ``function`` of ``path`` adds (the whole file for
    None)."""
    tree, imports = _parse(path)
    if function is None:
        return _flags_of_function(tree, path, imports, seen)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return _flags_of_function(node, path, imports, seen)
    return set()


def tool_flags(tool):
    """The flags ``tool`` (a repository path) accepts, read from its source:
    every ``add_argument('--flag', ...)`` of the script and of the smt_mm
    helpers it calls (``add_common_args`` ...)."""
    if tool not in _FLAGS:
        path = osp.join(REPO, tool)
        _FLAGS[tool] = _flags_in(path, None, set()) | {'-h', '--help'}
    return _FLAGS[tool]


# a shell tool's options: the patterns of its `case` on the arguments,
# e.g. `--out | --budget)`
CASE_FLAGS = re.compile(r'^\s*((?:-[\w-]+\s*\|\s*)*-[\w-]+)\)', re.M)


def script_flags(tool):
    """The flags a shell tool (a repository path) accepts, read from the
    ``case`` patterns of its option parsing."""
    with open(osp.join(REPO, tool), encoding='utf-8') as f:
        patterns = CASE_FLAGS.findall(f.read())
    return {flag.strip() for found in patterns for flag in found.split('|')}


def command_lines(text):
    """Tool command lines of a page: shell blocks (in other blocks the lines
    after a ``$`` prompt) with continuations joined and comments dropped,
    split at ``&&``, ``;`` and pipes, and inline code spans."""
    prose, blocks = split_fences(text)
    lines = []
    for lang, block in blocks:
        if lang.startswith('py'):
            continue
        block = block.replace('\\\n', ' ')
        for line in block.split('\n'):
            if lang not in ('bash', 'sh', 'shell'):
                # a screen: only the commands after a prompt, not the output
                if not line.startswith('$ '):
                    continue
                line = line[2:]
            line = re.sub(r'(^|\s)#.*', '', line)
            lines += re.split(r'&&|\|\||;|\s\|\s', line)
    lines += [
        m.group(0).strip('`').replace('\n', ' ')
        for m in INLINE_CODE.finditer(prose)
    ]
    return [line for line in lines if 'tools/' in line]


def tokens(line):
    try:
        return shlex.split(line)
    except ValueError:  # unbalanced quotes in a synopsis
        return line.split()


def flag_problems(text):
    problems = []
    for line in command_lines(text):
        words = tokens(line.replace('\\|', '|'))
        for i, word in enumerate(words):
            match = TOOL.search(word)
            if match:
                break
        else:
            continue
        tool = LAUNCHED.get(match.group(1), match.group(1))
        if not osp.isfile(osp.join(REPO, tool)):
            continue  # a missing tool is test_named_repository_paths_exist's
        used = [
            f.group(1).split('=')[0] for f in map(FLAG.match, words[i + 1:])
            if f
        ]
        if not tool.endswith('.py'):
            bad = [f for f in used if f not in script_flags(tool)]
        else:
            bad = [f for f in used if f not in tool_flags(tool)]
        if bad:
            problems.append(f'{tool} does not accept {bad}: {line.strip()}')
    return problems


def test_tool_flags_are_read_from_the_source():
    train = tool_flags('tools/train.py')
    # its own, and those of smt_mm.launch.cli's helpers it calls
    assert {'--work-dir', '--resume', '--cfg-options', '--launcher'} <= train
    assert '--dest' not in train
    assert {'--output-dir',
            '--out-dir'} <= tool_flags('tools/analysis/browse_dataset.py')
    acceptance = script_flags('tools/misc/gpu_acceptance.sh')
    assert {'--out', '--budget', '--help', '--rehearsal'} <= acceptance
    assert '--nope' not in acceptance and not script_flags('tools/install.sh')


def test_a_bogus_flag_is_found():
    text = ('```bash\npython tools/train.py CONFIG --amp \\\n    --bogus 1  '
            '# --also-not-checked\ntools/dist_train.sh CONFIG 8 --nope && '
            'python tools/test.py C K --tta\n```\n'
            'and `tools/demo.py IMG C K\n--out x.png --sideways`\n'
            '```\n$ python tools/test.py C K --tta\noutput: tools/test.py '
            '--not-a-command\n```\n')
    problems = flag_problems(text)
    assert len(problems) == 3, problems
    assert "tools/train.py does not accept ['--bogus']" in problems[0]
    assert "tools/train.py does not accept ['--nope']" in problems[1]
    assert "tools/demo.py does not accept ['--sideways']" in problems[2]


@pytest.mark.parametrize('page', pages())
def test_command_lines_use_accepted_flags(page):
    assert flag_problems(read(page)) == []


# ---------------------------------------------------------------------------
# 4. no placeholders, no words about the machines the project is built on
# ---------------------------------------------------------------------------
PLACEHOLDERS = [
    r'\bRESULT[_0-9A-Z]',
    r'\b(?:TODO|FIXME|XXX|TBD)\b',
]
# prose about the build machines and the project's history, not a user's
BUILD_WORDS = [
    r'\blent\b',
    r'\bdevice tool\b',
    r'\bsessions?\b',
    r'\bissues? #\d+',
    r'\bpredates?\b',
    r'\bpreviously\b',
    r'\bearlier (?:sessions?|builds?|releases?)\b',
    r"\bthis (?:repository's )?machine\b",
    r'\bour (?:\d+-core )?(?:CPU |GPU )?machines?\b',
    r'\bbefore this layout\b',
]


def wording_problems(text):
    prose, _ = split_fences(text)
    found = []
    for pattern in PLACEHOLDERS:  # anywhere, code included
        found += [m.group(0) for m in re.finditer(pattern, text)]
    for pattern in BUILD_WORDS:  # prose (program output may say 'machine')
        found += [
            m.group(0) for m in re.finditer(pattern, prose, re.IGNORECASE)
        ]
    return found


def test_wording_checks_find_what_they_should():
    assert sorted(
        wording_problems(
            'RESULT_T4 and RESULT3, a TODO; earlier sessions on this machine '
            'that no session had, lent by the device tool (issue #28), which '
            'predates that')) == sorted([
                'RESULT_', 'RESULT3', 'TODO', 'session', 'sessions', 'lent',
                'device tool', 'issue #28', 'predates', 'earlier sessions',
                'this machine'
            ])
    # legitimate text: tools, identifiers, program output in a code block
    assert wording_problems(
        '`requests_session`, SESSION_TIMEOUT, InferenceSession, '
        'silently, equivalent, RESULTs\n```\nthe ETA follows this machine\n'
        '```\n') == []


@pytest.mark.parametrize('page', pages())
def test_no_placeholders_or_build_machine_words(page):
    assert wording_problems(read(page)) == []


# ---------------------------------------------------------------------------
# 5. the README is a landing page that keeps the CI blocks
# ---------------------------------------------------------------------------
def ci_block(text, name):
    """The command lines between <!-- ci:NAME --> and <!-- /ci:NAME -->,
    as .ci/run extracts them."""
    match = re.search(
            rf'<!-- ci:{name} -->\n```bash\n(.*?)```\n<!-- /ci:{name} -->',
            text, re.S)
    return match.group(1) if match else None


def test_readme_is_short_and_keeps_the_ci_blocks():
    text = read('README.md')
    assert len(text.splitlines()) <= README_MAX_LINES
    for name, must in (('install', 'bash tools/install.sh'),
                       ('tests', 'python -m pytest tests')):
        block = ci_block(text, name)
        assert block and must in block, f'README.md lost its ci:{name} block'
        # the installation page shows the same command
        assert block in read('docs/get_started.md'), name
