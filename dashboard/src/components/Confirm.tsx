import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

/** What a {@link Confirm} dialog asks. */
export interface ConfirmRequest {
  title: string;
  body: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  onConfirm(): void;
}

/**
 * A modal confirmation (<dialog>: focus stays inside, Escape closes it, focus
 * returns to the button that opened it). Shown while `request` is set.
 */
export function Confirm({ request, onClose }: { request: ConfirmRequest | null; onClose(): void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (request && !dialog.open) dialog.showModal();
    if (!request && dialog.open) dialog.close();
  }, [request]);
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="confirm-title" onClose={onClose}>
      {request && (
        <form method="dialog" onSubmit={(e) => { e.preventDefault(); request.onConfirm(); onClose(); }}>
          <h2 id="confirm-title">{request.title}</h2>
          <div class="confirm-body">{request.body}</div>
          <div class="actions">
            <button type="button" onClick={onClose} autofocus>
              Back
            </button>
            <button type="submit" class={request.danger ? 'danger' : 'primary'}>
              {request.confirmLabel}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}
