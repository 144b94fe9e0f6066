// Workspace Trust. package.json declares `untrustedWorkspaces: limited`: in an untrusted workspace Basin shows
// information (GPU info, schemas) but starts no job, because a config can point at any file and a job runs native
// GPU code. Every job-starting command begins with `if (!requireTrust('training')) return;`.
import * as vscode from 'vscode';

/**
 * True when the workspace is trusted. Otherwise shows why `what` cannot run, with a way to trust the workspace,
 * and returns false.
 */
export function requireTrust(what: string): boolean {
  if (vscode.workspace.isTrusted) return true;
  const manage = 'Manage Workspace Trust';
  void vscode.window
    .showWarningMessage(
      `Basin does not start ${what} in an untrusted workspace: a config can point at any file on disk and a job runs native GPU code. ` +
        'Trust this workspace to run it.',
      manage,
    )
    .then((choice) => {
      if (choice === manage) void vscode.commands.executeCommand('workbench.trust.manage');
    });
  return false;
}
